@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.activity.result
fun interface ActivityResultCallback<O> { fun onActivityResult(result: O) }
class ActivityResultLauncher<I> { fun launch(input: I) {} }
