@file:Suppress("unused", "UNUSED_PARAMETER")
package com.google.mediapipe.tasks.core
enum class Delegate { CPU, GPU }
abstract class BaseOptions {
    abstract class Builder { abstract fun setModelAssetPath(p: String): Builder; abstract fun setDelegate(d: Delegate): Builder; abstract fun build(): BaseOptions }
    companion object { @JvmStatic fun builder(): Builder = TODO() }
}
