@file:Suppress("unused", "UNUSED_PARAMETER")
package com.google.mediapipe.tasks.vision.facelandmarker
import com.google.mediapipe.framework.image.MPImage
import com.google.mediapipe.tasks.core.BaseOptions
import com.google.mediapipe.tasks.vision.core.RunningMode
abstract class NormalizedLandmark { abstract fun x(): Float; abstract fun y(): Float }
abstract class FaceLandmarkerResult { abstract fun faceLandmarks(): List<List<NormalizedLandmark>> }
class FaceLandmarker : AutoCloseable {
    fun detectForVideo(image: MPImage, timestampMs: Long): FaceLandmarkerResult = TODO()
    override fun close() {}
    abstract class FaceLandmarkerOptions {
        abstract class Builder {
            abstract fun setBaseOptions(o: BaseOptions): Builder; abstract fun setRunningMode(m: RunningMode): Builder
            abstract fun setNumFaces(n: Int): Builder; abstract fun setMinFaceDetectionConfidence(c: Float): Builder
            abstract fun setMinFacePresenceConfidence(c: Float): Builder; abstract fun setMinTrackingConfidence(c: Float): Builder
            abstract fun build(): FaceLandmarkerOptions
        }
        companion object { @JvmStatic fun builder(): Builder = TODO() }
    }
    companion object { @JvmStatic fun createFromOptions(context: android.content.Context, options: FaceLandmarkerOptions): FaceLandmarker = TODO() }
}
