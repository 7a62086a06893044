@file:Suppress("unused", "UNUSED_PARAMETER")
package org.udc.demo
object BuildConfig { const val EXECUTORCH_VERSION = "1.5.1"; const val MEDIAPIPE_VERSION = "0.10.29" }
object R { object string { const val no_camera_permission = 1 } }
