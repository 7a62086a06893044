package org.udc.demo

/**
 * What the app checks about its own ExecuTorch runtime before it runs a bundle (plain Kotlin: no Android
 * types, so it type-checks with kotlinc on its own; tests/app_contract.py ports the same rules to Python).
 */
object ExecutorchCompat {
    enum class Verdict { OK, RUNTIME_TOO_OLD, BEYOND_GUARANTEE, UNKNOWN }

    /**
     * ExecuTorch runtime/COMPATIBILITY.md: a .pte made with release X.Y loads on a runtime of X.Y and of at
     * least the next non-patch release ("and possibly more"); there is no forward compatibility (an older
     * runtime may fail on a newer .pte). So: runtime major.minor older than the exporter's -> refuse;
     * the same or the next minor -> fine; further ahead -> works "possibly": a warning.
     */
    fun verdict(exporter: String?, runtime: String): Verdict {
        val e = majorMinor(exporter ?: return Verdict.UNKNOWN) ?: return Verdict.UNKNOWN
        val r = majorMinor(runtime) ?: return Verdict.UNKNOWN
        return when {
            r.first < e.first || (r.first == e.first && r.second < e.second) -> Verdict.RUNTIME_TOO_OLD
            r.first == e.first && r.second <= e.second + 1 -> Verdict.OK
            else -> Verdict.BEYOND_GUARANTEE
        }
    }

    /** "1.5.1" / "1.5.0+cpu" / "1.6.0.dev20260801" -> (1, 5); null when there is no major.minor. */
    fun majorMinor(version: String): Pair<Int, Int>? {
        val parts = version.trim().split('.')
        if (parts.size < 2) return null
        val major = parts[0].toIntOrNull() ?: return null
        val minor = parts[1].takeWhile(Char::isDigit).toIntOrNull() ?: return null
        return major to minor
    }

    /** The line the app shows (empty when nothing needs saying); throws [ManifestError] when the runtime is too old. */
    fun message(exporter: String?, runtime: String): String = when (verdict(exporter, runtime)) {
        Verdict.OK -> ""
        Verdict.UNKNOWN -> "note: the bundle does not say which executorch exported it (tools.executorch); runtime $runtime"
        Verdict.BEYOND_GUARANTEE ->
            "note: exported with executorch $exporter, runtime $runtime: more than one minor release apart, " +
                "loading is not guaranteed (ExecuTorch COMPATIBILITY.md)"
        Verdict.RUNTIME_TOO_OLD -> throw ManifestError(
            "exported with executorch $exporter, but this app's runtime is $runtime (older): ExecuTorch has no " +
                "forward compatibility. Re-export with executorch ${runtime.substringBeforeLast('.')}.x or rebuild the app " +
                "with executorch-android >= ${exporter?.let { majorMinor(it) }?.let { "${it.first}.${it.second}" }}"
        )
    }
}

/** Which ExecuTorch backends a bundle needs and whether this app's runtime has them. */
object BackendCheck {
    /** The delegate a bundle's top-level "backend" needs in the runtime (null: portable kernels only). */
    private val REQUIRED = mapOf("xnnpack" to "XnnpackBackend", "coreml" to "CoreMLBackend")

    fun requiredFor(manifestBackend: String): String? = REQUIRED[manifestBackend]

    /** The names in [used] that [registered] lacks, in order. */
    fun missing(used: Iterable<String>, registered: Collection<String>): List<String> =
        used.filter { it !in registered }.distinct()

    fun refusal(what: String, missing: List<String>, registered: Collection<String>): String =
        "$what needs the ExecuTorch backend ${missing.joinToString()} that this app's runtime does not have " +
            "(it has ${if (registered.isEmpty()) "none" else registered.joinToString()}): export with " +
            "udc-export --target executorch --backend xnnpack for Android"
}
