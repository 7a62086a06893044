@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.camera.core.resolutionselector
class ResolutionStrategy(size: android.util.Size, fallbackRule: Int) { companion object { const val FALLBACK_RULE_CLOSEST_HIGHER_THEN_LOWER = 1 } }
class ResolutionSelector { class Builder { fun setResolutionStrategy(s: ResolutionStrategy): Builder = this; fun build() = ResolutionSelector() } }
