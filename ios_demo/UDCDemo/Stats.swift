import Foundation

/// Percentiles (linear interpolation between order statistics, as numpy's default) of latencies in ms.
enum Stats {
    static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let pos = Double(sorted.count - 1) * q / 100
        let lo = Int(pos), hi = min(lo + 1, sorted.count - 1)
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - Double(lo))
    }

    static func summary(_ samples: [Double]) -> String {
        let s = samples.sorted()
        return String(format: "p50 %.2f ms  p90 %.2f ms", percentile(s, 50), percentile(s, 90))
    }
}
