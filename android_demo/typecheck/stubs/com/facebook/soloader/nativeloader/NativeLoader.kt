package com.facebook.soloader.nativeloader
interface NativeLoaderDelegate
class SystemDelegate : NativeLoaderDelegate
object NativeLoader { @JvmStatic fun isInitialized(): Boolean = true; @JvmStatic fun init(d: NativeLoaderDelegate) {}; @JvmStatic fun loadLibrary(name: String): Boolean = true }
