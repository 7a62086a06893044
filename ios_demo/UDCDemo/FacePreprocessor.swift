import CoreML
import CoreVideo
import Foundation

/// MediaPipe's 478-point mesh -> the bundle's 68 points -> similarity alignment onto the canonical face ->
/// the normalised NCHW crop and the 68 landmarks in crop units, written into MLMultiArrays allocated once.
///
/// Everything comes from the manifest (crop size, mean/std/scale, the 478->68 table, alignment points,
/// canonical face, fill colour) and follows udc.sdk.faces.align.align_face: least-squares similarity of the
/// alignment points onto canonical * crop_size; crop pixel (i, j) samples the frame bilinearly at
/// M^-1 (i + 0.5, j + 0.5); landmarks are M p / crop_size.
final class FacePreprocessor {
    let cropSize: Int
    let points: Int
    /// [1, 3, S, S] float32
    let image: MLMultiArray
    /// [1, 68, 2] float32, crop units
    let landmarks: MLMultiArray
    /// the 68 points in frame pixels and the mesh's box (x0, y0, x1, y1), for the overlay
    private(set) var points68: [Float]
    private(set) var box: [Float] = [0, 0, 0, 0]

    private let table: [Int]
    private let alignment: [Int]
    private let template: [Float]
    private let gain: [Float]
    private let bias: [Float]
    private let fill: [Float]
    private var m = [Double](repeating: 0, count: 6)  // frame -> crop: [a, -b, tx; b, a, ty]

    init(_ pre: Preprocessing, table: [Int]) throws {
        cropSize = pre.cropSize
        points = table.count
        self.table = table
        alignment = pre.alignmentPoints
        template = pre.canonical.map { $0 * Float(pre.cropSize) }
        gain = (0..<3).map { pre.scale / pre.std[$0] }
        bias = (0..<3).map { -pre.mean[$0] / pre.std[$0] }
        fill = (0..<3).map { c in pre.fill[c] * pre.scale / pre.std[c] - pre.mean[c] / pre.std[c] }
        points68 = [Float](repeating: 0, count: table.count * 2)
        image = try MLMultiArray(shape: [1, 3, NSNumber(value: pre.cropSize), NSNumber(value: pre.cropSize)], dataType: .float32)
        landmarks = try MLMultiArray(shape: pre.landmarksShape.map { NSNumber(value: $0) }, dataType: .float32)
    }

    /// `mesh`: MediaPipe normalized (x, y) interleaved for `meshCount` points; `frame`: the BGRA camera buffer.
    /// Returns false when the mesh lacks a point the table needs.
    func process(mesh: UnsafePointer<Float>, meshCount: Int, frame: CVPixelBuffer) -> Bool {
        let width = CVPixelBufferGetWidth(frame), height = CVPixelBufferGetHeight(frame)
        let w = Float(width), h = Float(height)
        var x0 = Float.greatestFiniteMagnitude, y0 = Float.greatestFiniteMagnitude
        var x1 = -Float.greatestFiniteMagnitude, y1 = -Float.greatestFiniteMagnitude
        for i in 0..<meshCount {
            let x = mesh[2 * i] * w, y = mesh[2 * i + 1] * h
            x0 = min(x0, x); x1 = max(x1, x); y0 = min(y0, y); y1 = max(y1, y)
        }
        box[0] = x0; box[1] = y0; box[2] = x1; box[3] = y1
        for k in 0..<points {
            let idx = table[k]
            if idx >= meshCount { return false }
            points68[2 * k] = mesh[2 * idx] * w
            points68[2 * k + 1] = mesh[2 * idx + 1] * h
        }
        fitSimilarity()
        CVPixelBufferLockBaseAddress(frame, .readOnly)
        defer { CVPixelBufferUnlockBaseAddress(frame, .readOnly) }
        guard let base = CVPixelBufferGetBaseAddress(frame) else { return false }
        warp(base.assumingMemoryBound(to: UInt8.self), width: width, height: height, rowBytes: CVPixelBufferGetBytesPerRow(frame))
        let s = Double(cropSize)
        landmarks.withUnsafeMutableBufferPointer(ofType: Float.self) { out, _ in
            for k in 0..<points {
                let x = Double(points68[2 * k]), y = Double(points68[2 * k + 1])
                out[2 * k] = Float((m[0] * x + m[1] * y + m[2]) / s)
                out[2 * k + 1] = Float((m[3] * x + m[4] * y + m[5]) / s)
            }
        }
        return true
    }

    /// Least-squares similarity of the alignment points onto the template (the 2-D closed form of Umeyama).
    private func fitSimilarity() {
        var msx = 0.0, msy = 0.0, mdx = 0.0, mdy = 0.0
        for k in alignment {
            msx += Double(points68[2 * k]); msy += Double(points68[2 * k + 1])
            mdx += Double(template[2 * k]); mdy += Double(template[2 * k + 1])
        }
        let n = Double(alignment.count)
        msx /= n; msy /= n; mdx /= n; mdy /= n
        var sxx = 0.0, numA = 0.0, numB = 0.0
        for k in alignment {
            let sx = Double(points68[2 * k]) - msx, sy = Double(points68[2 * k + 1]) - msy
            let dx = Double(template[2 * k]) - mdx, dy = Double(template[2 * k + 1]) - mdy
            sxx += sx * sx + sy * sy
            numA += sx * dx + sy * dy
            numB += sx * dy - sy * dx
        }
        let a = sxx > 0 ? numA / sxx : 1, b = sxx > 0 ? numB / sxx : 0
        m[0] = a; m[1] = -b; m[2] = mdx - (a * msx - b * msy)
        m[3] = b; m[4] = a; m[5] = mdy - (b * msx + a * msy)
    }

    private func warp(_ bgra: UnsafePointer<UInt8>, width: Int, height: Int, rowBytes: Int) {
        let a = m[0], b = m[3]
        let det = a * a + b * b
        let ia = a / det, ib = b / det
        let itx = -(ia * m[2] + ib * m[5]), ity = -(-ib * m[2] + ia * m[5])
        let s = cropSize, plane = s * s
        let channel = [2, 1, 0]  // R, G, B inside a BGRA pixel
        image.withUnsafeMutableBufferPointer(ofType: Float.self) { out, _ in
            for j in 0..<s {
                let cy = Double(j) + 0.5
                for i in 0..<s {
                    let cx = Double(i) + 0.5
                    let u = ia * cx + ib * cy + itx, v = -ib * cx + ia * cy + ity
                    let o = j * s + i
                    if u < 0 || v < 0 || u >= Double(width) || v >= Double(height) {
                        for c in 0..<3 { out[c * plane + o] = fill[c] }
                        continue
                    }
                    let xf = u - 0.5, yf = v - 0.5
                    let xa = xf.rounded(.down), ya = yf.rounded(.down)
                    let dx = xf - xa, dy = yf - ya
                    let xi0 = min(max(Int(xa), 0), width - 1), xi1 = min(max(Int(xa) + 1, 0), width - 1)
                    let yi0 = min(max(Int(ya), 0), height - 1), yi1 = min(max(Int(ya) + 1, 0), height - 1)
                    for c in 0..<3 {
                        let ch = channel[c]
                        let p00 = Double(bgra[yi0 * rowBytes + xi0 * 4 + ch]), p01 = Double(bgra[yi0 * rowBytes + xi1 * 4 + ch])
                        let p10 = Double(bgra[yi1 * rowBytes + xi0 * 4 + ch]), p11 = Double(bgra[yi1 * rowBytes + xi1 * 4 + ch])
                        let top = p00 * (1 - dx) + p01 * dx, bottom = p10 * (1 - dx) + p11 * dx
                        let value = Float((top * (1 - dy) + bottom * dy).rounded(.down))  // truncated to uint8, as PIL (the SDK's crop)
                        out[c * plane + o] = value * gain[c] + bias[c]
                    }
                }
            }
        }
    }
}

/// N(0, I) noise for the denoiser, drawn into one reused MLMultiArray (shape from the manifest).
final class NoiseSource {
    let array: MLMultiArray
    private var generator = SystemRandomNumberGenerator()

    init(_ spec: NoiseSpec) throws {
        array = try MLMultiArray(shape: spec.shape.map { NSNumber(value: $0) }, dataType: .float32)
    }

    /// Box-Muller pairs.
    func draw() {
        array.withUnsafeMutableBufferPointer(ofType: Float.self) { out, _ in
            var i = 0
            while i < out.count {
                let u1 = Double.random(in: Double.ulpOfOne..<1, using: &generator)
                let u2 = Double.random(in: 0..<1, using: &generator)
                let r = (-2 * log(u1)).squareRoot()
                out[i] = Float(r * cos(2 * .pi * u2))
                if i + 1 < out.count { out[i + 1] = Float(r * sin(2 * .pi * u2)) }
                i += 2
            }
        }
    }
}
