@file:Suppress("unused", "UNUSED_PARAMETER")
package android.os
class Bundle
object SystemClock { @JvmStatic fun uptimeMillis(): Long = 0 }
object Build { @JvmField val MANUFACTURER: String = ""; @JvmField val MODEL: String = "" }
