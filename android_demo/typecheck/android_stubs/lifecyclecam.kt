@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.camera.lifecycle
import androidx.camera.core.*
class ProcessCameraProvider {
    fun unbindAll() {}
    fun bindToLifecycle(owner: androidx.lifecycle.LifecycleOwner, selector: CameraSelector, vararg useCases: UseCase): Camera = object : Camera {}
    companion object { @JvmStatic fun getInstance(context: android.content.Context): com.google.common.util.concurrent.ListenableFuture<ProcessCameraProvider> = TODO() }
}
