@file:Suppress("unused", "UNUSED_PARAMETER")
package com.google.mediapipe.tasks.vision.core
enum class RunningMode { IMAGE, VIDEO, LIVE_STREAM }
