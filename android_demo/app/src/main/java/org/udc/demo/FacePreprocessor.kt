package org.udc.demo

import java.nio.ByteBuffer
import java.nio.FloatBuffer
import kotlin.math.floor
import org.pytorch.executorch.Tensor

/**
 * MediaPipe's 478-point mesh -> the bundle's 68 points -> similarity alignment onto the canonical face ->
 * the normalised NCHW crop and the 68 landmarks in crop units, written into buffers allocated once.
 *
 * Everything comes from the manifest (crop size, mean/std/scale, the 478->68 table, the alignment points,
 * the canonical face, the fill colour) and follows udc.sdk.faces.align.align_face: least-squares similarity
 * (rotation + uniform scale + translation) of the alignment points onto canonical * crop_size; crop pixel
 * (i, j) samples the frame bilinearly at M^-1 (i + 0.5, j + 0.5); landmarks are M p / crop_size.
 */
class FacePreprocessor(private val pre: Preprocessing, private val table: IntArray) {
    val cropSize = pre.cropSize
    val points = table.size
    val imageShape = longArrayOf(1, 3, cropSize.toLong(), cropSize.toLong())

    /** [1, 3, S, S] float32, direct and native-ordered: ExecuTorch reads it in place. */
    val image: FloatBuffer = Tensor.allocateFloatBuffer(3 * cropSize * cropSize)

    /** [1, 68, 2] float32 in crop units (x right, y down). */
    val landmarks: FloatBuffer = Tensor.allocateFloatBuffer(points * 2)

    /** The 68 points in frame pixels and the face box (x0, y0, x1, y1) of the whole mesh, for the overlay. */
    val points68 = FloatArray(points * 2)
    val box = FloatArray(4)

    private val template = FloatArray(points * 2) { pre.canonical[it] * cropSize }
    private val gain = FloatArray(3) { pre.scale / pre.std[it] }
    private val bias = FloatArray(3) { -pre.mean[it] / pre.std[it] }
    private val fill = FloatArray(3) { pre.fill[it] * gain[it] + bias[it] }
    private val m = DoubleArray(6) // frame -> crop: [a, -b, tx; b, a, ty]

    /**
     * [mesh]: MediaPipe normalized (x, y) interleaved for [meshCount] points; [rgba]: the frame, tightly packed
     * RGBA rows of [width] x [height]. Returns false when the mesh lacks a point the table needs.
     */
    fun process(mesh: FloatArray, meshCount: Int, rgba: ByteBuffer, width: Int, height: Int): Boolean {
        var x0 = Float.MAX_VALUE; var y0 = Float.MAX_VALUE; var x1 = -Float.MAX_VALUE; var y1 = -Float.MAX_VALUE
        for (i in 0 until meshCount) {
            val x = mesh[2 * i] * width; val y = mesh[2 * i + 1] * height
            if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y
        }
        box[0] = x0; box[1] = y0; box[2] = x1; box[3] = y1
        for (k in 0 until points) {
            val idx = table[k]
            if (idx >= meshCount) return false
            points68[2 * k] = mesh[2 * idx] * width
            points68[2 * k + 1] = mesh[2 * idx + 1] * height
        }
        fitSimilarity()
        warp(rgba, width, height)
        val s = cropSize.toDouble()
        landmarks.clear()
        for (k in 0 until points) {
            val x = points68[2 * k].toDouble(); val y = points68[2 * k + 1].toDouble()
            landmarks.put(((m[0] * x + m[1] * y + m[2]) / s).toFloat())
            landmarks.put(((m[3] * x + m[4] * y + m[5]) / s).toFloat())
        }
        landmarks.rewind()
        return true
    }

    /** Least-squares similarity of the alignment points onto the template (the 2-D closed form of Umeyama). */
    private fun fitSimilarity() {
        val idx = pre.alignmentPoints
        var msx = 0.0; var msy = 0.0; var mdx = 0.0; var mdy = 0.0
        for (k in idx) { msx += points68[2 * k]; msy += points68[2 * k + 1]; mdx += template[2 * k]; mdy += template[2 * k + 1] }
        val n = idx.size.toDouble()
        msx /= n; msy /= n; mdx /= n; mdy /= n
        var sxx = 0.0; var numA = 0.0; var numB = 0.0
        for (k in idx) {
            val sx = points68[2 * k] - msx; val sy = points68[2 * k + 1] - msy
            val dx = template[2 * k] - mdx; val dy = template[2 * k + 1] - mdy
            sxx += sx * sx + sy * sy
            numA += sx * dx + sy * dy
            numB += sx * dy - sy * dx
        }
        val a = if (sxx > 0) numA / sxx else 1.0
        val b = if (sxx > 0) numB / sxx else 0.0
        m[0] = a; m[1] = -b; m[2] = mdx - (a * msx - b * msy)
        m[3] = b; m[4] = a; m[5] = mdy - (b * msx + a * msy)
    }

    private fun warp(rgba: ByteBuffer, width: Int, height: Int) {
        // crop -> frame: the inverse of [a, -b; b, a] is [a, b; -b, a] / (a^2 + b^2)
        val a = m[0]; val b = m[3]
        val det = a * a + b * b
        val ia = a / det; val ib = b / det
        val itx = -(ia * m[2] + ib * m[5]); val ity = -(-ib * m[2] + ia * m[5])
        val s = cropSize
        val plane = s * s
        for (j in 0 until s) {
            val cy = j + 0.5
            for (i in 0 until s) {
                val cx = i + 0.5
                val u = ia * cx + ib * cy + itx
                val v = -ib * cx + ia * cy + ity
                val o = j * s + i
                if (u < 0 || v < 0 || u >= width || v >= height) {
                    image.put(o, fill[0]); image.put(plane + o, fill[1]); image.put(2 * plane + o, fill[2])
                    continue
                }
                val xf = u - 0.5; val yf = v - 0.5
                val xa = floor(xf); val ya = floor(yf)
                val dx = xf - xa; val dy = yf - ya
                val xi0 = xa.toInt().coerceIn(0, width - 1); val xi1 = (xa.toInt() + 1).coerceIn(0, width - 1)
                val yi0 = ya.toInt().coerceIn(0, height - 1); val yi1 = (ya.toInt() + 1).coerceIn(0, height - 1)
                val p00 = (yi0 * width + xi0) * 4; val p01 = (yi0 * width + xi1) * 4
                val p10 = (yi1 * width + xi0) * 4; val p11 = (yi1 * width + xi1) * 4
                for (c in 0 until 3) {
                    val top = (rgba.get(p00 + c).toInt() and 0xFF) * (1 - dx) + (rgba.get(p01 + c).toInt() and 0xFF) * dx
                    val bot = (rgba.get(p10 + c).toInt() and 0xFF) * (1 - dx) + (rgba.get(p11 + c).toInt() and 0xFF) * dx
                    val value = floor(top * (1 - dy) + bot * dy).toFloat() // truncated to uint8, as PIL (the SDK's crop)
                    image.put(c * plane + o, value * gain[c] + bias[c])
                }
            }
        }
    }
}

/** N(0, I) noise for the denoiser, drawn into one reused buffer ([NoiseSpec.shape] from the manifest). */
class NoiseSource(spec: NoiseSpec, seed: Long = 0L) {
    val shape: LongArray = spec.shape
    val buffer: FloatBuffer = Tensor.allocateFloatBuffer(spec.numel)
    private val random = java.util.Random(seed)

    fun draw() {
        for (i in 0 until buffer.capacity()) buffer.put(i, random.nextGaussian().toFloat())
    }
}
