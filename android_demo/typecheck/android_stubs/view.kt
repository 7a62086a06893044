@file:Suppress("unused", "UNUSED_PARAMETER")
package android.view
import android.content.Context
import android.util.AttributeSet
open class View(context: Context?, attrs: AttributeSet? = null) {
    val width: Int = 0; val height: Int = 0
    val paddingLeft: Int = 0; val paddingTop: Int = 0; val paddingRight: Int = 0; val paddingBottom: Int = 0
    var isEnabled: Boolean = true
    fun setPadding(left: Int, top: Int, right: Int, bottom: Int) {}
    fun postInvalidate() {}
    open fun onDraw(canvas: android.graphics.Canvas) {}
    fun interface OnClickListener { fun onClick(v: View) }
    fun setOnClickListener(l: OnClickListener?) {}
}
class LayoutInflater
class Window
