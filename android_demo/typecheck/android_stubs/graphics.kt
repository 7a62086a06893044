@file:Suppress("unused", "UNUSED_PARAMETER")
package android.graphics
import java.nio.Buffer
class Bitmap private constructor(val width: Int, val height: Int) {
    enum class Config { ARGB_8888 }
    fun copyPixelsFromBuffer(src: Buffer) {}
    companion object { @JvmStatic fun createBitmap(width: Int, height: Int, config: Config): Bitmap = Bitmap(width, height) }
}
object Color { const val GREEN = 0; const val CYAN = 1; const val WHITE = 2; const val BLACK = 3 }
class Paint {
    enum class Style { STROKE, FILL }
    var color: Int = 0; var style: Style = Style.FILL; var strokeWidth: Float = 0f; var textSize: Float = 0f; var isAntiAlias = false
    fun setShadowLayer(radius: Float, dx: Float, dy: Float, shadowColor: Int) {}
}
class Canvas {
    fun drawRect(l: Float, t: Float, r: Float, b: Float, p: Paint) {}
    fun drawCircle(x: Float, y: Float, r: Float, p: Paint) {}
    fun drawText(s: String, x: Float, y: Float, p: Paint) {}
}
