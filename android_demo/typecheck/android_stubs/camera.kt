@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.camera.core
import java.nio.ByteBuffer
import java.util.concurrent.Executor
import androidx.camera.core.resolutionselector.ResolutionSelector
open class UseCase
class CameraSelector { companion object { @JvmField val DEFAULT_FRONT_CAMERA = CameraSelector() } }
interface ImageProxy : AutoCloseable {
    val width: Int; val height: Int
    val planes: Array<PlaneProxy>
    interface PlaneProxy { val buffer: ByteBuffer; val rowStride: Int; val pixelStride: Int }
}
class ImageAnalysis : UseCase() {
    fun interface Analyzer { fun analyze(image: ImageProxy) }
    fun setAnalyzer(executor: Executor, analyzer: Analyzer) {}
    fun clearAnalyzer() {}
    class Builder {
        fun setResolutionSelector(s: ResolutionSelector): Builder = this
        fun setOutputImageFormat(f: Int): Builder = this
        fun setOutputImageRotationEnabled(b: Boolean): Builder = this
        fun setBackpressureStrategy(s: Int): Builder = this
        fun build(): ImageAnalysis = ImageAnalysis()
    }
    companion object { const val OUTPUT_IMAGE_FORMAT_RGBA_8888 = 2; const val STRATEGY_KEEP_ONLY_LATEST = 0 }
}
class Preview : UseCase() {
    fun interface SurfaceProvider { fun onSurfaceRequested(r: Any) }
    fun setSurfaceProvider(p: SurfaceProvider?) {}
    class Builder { fun build(): Preview = Preview() }
}
interface Camera
