package org.udc.demo

import android.content.Context
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Paint
import android.util.AttributeSet
import android.view.View

/**
 * Face box, the 68 landmarks, the expression with its probability and the per-stage latency, drawn over
 * the PreviewView (scale type fillCenter). The front camera's preview is mirrored; the analysed frames are
 * not, so x is mirrored here.
 */
class OverlayView(context: Context, attrs: AttributeSet?) : View(context, attrs) {
    private val lock = Any()
    private var shared: FrameResult? = null
    private var drawn: FrameResult? = null
    var mirror = true
    @Volatile private var safeTop = 0f
    @Volatile private var safeBottom = 0f

    /** System-bar insets in px (edge to edge): the text stays between the status bar and the navigation bar. */
    fun setSafeArea(top: Int, bottom: Int) {
        safeTop = top.toFloat()
        safeBottom = bottom.toFloat()
        postInvalidate()
    }

    private val boxPaint = Paint().apply { color = Color.GREEN; style = Paint.Style.STROKE; strokeWidth = 4f }
    private val pointPaint = Paint().apply { color = Color.CYAN; style = Paint.Style.FILL }
    private val textPaint = Paint().apply { color = Color.WHITE; textSize = 44f; isAntiAlias = true; setShadowLayer(4f, 0f, 0f, Color.BLACK) }
    private val smallPaint = Paint().apply { color = Color.WHITE; textSize = 30f; isAntiAlias = true; setShadowLayer(3f, 0f, 0f, Color.BLACK) }

    /** Called from the analysis thread. */
    fun publish(r: FrameResult) {
        synchronized(lock) {
            val s = shared ?: FrameResult(r.points68.size / 2, r.stageMs.size).also { shared = it }
            if (s.stageMs.size != r.stageMs.size || s.points68.size != r.points68.size) {
                shared = FrameResult(r.points68.size / 2, r.stageMs.size).also { it.copyFrom(r) }
            } else {
                s.copyFrom(r)
            }
        }
        postInvalidate()
    }

    override fun onDraw(canvas: Canvas) {
        super.onDraw(canvas)
        val r = synchronized(lock) {
            val s = shared ?: return
            val d = drawn?.takeIf { it.stageMs.size == s.stageMs.size && it.points68.size == s.points68.size }
                ?: FrameResult(s.points68.size / 2, s.stageMs.size).also { drawn = it }
            d.copyFrom(s)
            d
        }
        if (r.frameWidth == 0) return
        val scale = maxOf(width.toFloat() / r.frameWidth, height.toFloat() / r.frameHeight)
        val offX = (width - r.frameWidth * scale) / 2f
        val offY = (height - r.frameHeight * scale) / 2f
        fun vx(x: Float): Float { val v = x * scale + offX; return if (mirror) width - v else v }
        fun vy(y: Float) = y * scale + offY

        // the latency block: below the status bar, ending above the navigation bar and the controls row
        var y = minOf(maxOf(height * 0.62f, safeTop + 60f), height - safeBottom - 34f * (r.stageMs.size + 4))
        if (r.hasFace) {
            val l = vx(r.box[0]); val rr = vx(r.box[2])
            canvas.drawRect(minOf(l, rr), vy(r.box[1]), maxOf(l, rr), vy(r.box[3]), boxPaint)
            for (k in 0 until r.points68.size / 2) canvas.drawCircle(vx(r.points68[2 * k]), vy(r.points68[2 * k + 1]), 5f, pointPaint)
            canvas.drawText("%s  %.0f%%".format(r.label, r.confidence * 100), minOf(l, rr), vy(r.box[1]) - 16f, textPaint)
        } else {
            canvas.drawText("no face", 24f, y, textPaint)
        }
        y += 40f
        canvas.drawText("landmarks %.1f ms   preprocess %.1f ms".format(r.landmarkerMs, r.preprocessMs), 24f, y, smallPaint)
        var total = 0.0
        for (i in r.stageMs.indices) {
            y += 34f
            total += r.stageMs[i]
            canvas.drawText("%-10s %.2f ms".format(r.stageNames.getOrElse(i) { "?" }, r.stageMs[i]), 24f, y, smallPaint)
        }
        y += 34f
        canvas.drawText("model total %.2f ms".format(total), 24f, y, smallPaint)
    }
}
