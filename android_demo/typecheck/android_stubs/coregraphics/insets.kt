package androidx.core.graphics
class Insets(@JvmField val left: Int, @JvmField val top: Int, @JvmField val right: Int, @JvmField val bottom: Int)
