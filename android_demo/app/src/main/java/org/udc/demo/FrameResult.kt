package org.udc.demo

/** What one frame produced, copied (under a lock, without allocating) from the analysis thread to the view. */
class FrameResult(points: Int, stages: Int) {
    var frameWidth = 0
    var frameHeight = 0
    var hasFace = false
    val box = FloatArray(4)
    val points68 = FloatArray(points * 2)
    var label = ""
    var confidence = 0f
    var landmarkerMs = 0.0
    var preprocessMs = 0.0
    val stageMs = DoubleArray(stages)
    var stageNames: List<String> = emptyList()

    fun copyFrom(o: FrameResult) {
        frameWidth = o.frameWidth; frameHeight = o.frameHeight; hasFace = o.hasFace
        o.box.copyInto(box); o.points68.copyInto(points68)
        label = o.label; confidence = o.confidence
        landmarkerMs = o.landmarkerMs; preprocessMs = o.preprocessMs
        o.stageMs.copyInto(stageMs); stageNames = o.stageNames
    }
}
