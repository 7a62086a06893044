package com.facebook.jni.annotations
annotation class DoNotStrip
