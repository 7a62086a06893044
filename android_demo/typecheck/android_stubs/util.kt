@file:Suppress("unused", "UNUSED_PARAMETER")
package android.util
class Size(val width: Int, val height: Int)
interface AttributeSet
