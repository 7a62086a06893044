@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.appcompat.app
import android.content.Context
open class AppCompatActivity : Context(), androidx.lifecycle.LifecycleOwner {
    val layoutInflater = android.view.LayoutInflater()
    val window = android.view.Window()
    open fun onCreate(savedInstanceState: android.os.Bundle?) {}
    open fun onDestroy() {}
    fun setContentView(v: android.view.View) {}
    fun runOnUiThread(action: Runnable) {}
    fun <I, O> registerForActivityResult(contract: androidx.activity.result.contract.ActivityResultContract<I, O>,
        callback: androidx.activity.result.ActivityResultCallback<O>): androidx.activity.result.ActivityResultLauncher<I> =
        androidx.activity.result.ActivityResultLauncher()
}
