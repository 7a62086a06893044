@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.core.view
import android.view.View
import androidx.core.graphics.Insets
class WindowInsetsCompat {
    fun getInsets(typeMask: Int): Insets = Insets(0, 0, 0, 0)
    object Type { @JvmStatic fun systemBars(): Int = 1; @JvmStatic fun displayCutout(): Int = 2 }
}
fun interface OnApplyWindowInsetsListener { fun onApplyWindowInsets(v: View, insets: WindowInsetsCompat): WindowInsetsCompat }
object ViewCompat { @JvmStatic fun setOnApplyWindowInsetsListener(v: View, l: OnApplyWindowInsetsListener?) {} }
object WindowCompat { @JvmStatic fun setDecorFitsSystemWindows(window: android.view.Window, decorFitsSystemWindows: Boolean) {} }
inline fun View.updatePadding(left: Int = paddingLeft, top: Int = paddingTop, right: Int = paddingRight, bottom: Int = paddingBottom) {
    setPadding(left, top, right, bottom)
}
