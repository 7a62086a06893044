@file:Suppress("unused", "UNUSED_PARAMETER")
package com.google.mediapipe.framework.image
class MPImage
class BitmapImageBuilder(bitmap: android.graphics.Bitmap) { fun build(): MPImage = MPImage() }
