package org.udc.demo

/** Percentiles (linear interpolation between order statistics, as numpy's default) of latencies in ms. */
object Stats {
    fun percentile(sorted: DoubleArray, q: Double): Double {
        if (sorted.isEmpty()) return Double.NaN
        val pos = (sorted.size - 1) * q / 100.0
        val lo = pos.toInt()
        val hi = minOf(lo + 1, sorted.size - 1)
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo)
    }

    /** "p50 1.23 ms  p90 1.87 ms" of [samples] (not modified). */
    fun summary(samples: DoubleArray): String {
        val s = samples.sortedArray()
        return "p50 %.2f ms  p90 %.2f ms".format(percentile(s, 50.0), percentile(s, 90.0))
    }
}
