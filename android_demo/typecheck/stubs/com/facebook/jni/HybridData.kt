package com.facebook.jni
class HybridData { val isValid: Boolean get() = true; fun resetNative() {} }
