package org.udc.demo

import java.io.Closeable
import java.nio.FloatBuffer
import kotlin.math.exp
import org.pytorch.executorch.EValue
import org.pytorch.executorch.ExecuTorchRuntime
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor

/**
 * Runs a bundle's .pte components in the manifest's order (or the fused pipeline alone) with ExecuTorch.
 *
 * Every input is fed by position, in the order the manifest lists the component's inputs (the order of
 * the exported forward()), from the tensor the wiring names: an app tensor (the crop, the landmarks, the
 * noise, wrapped once around the preprocessor's direct buffers) or an earlier component's output (copied
 * into a direct buffer allocated once). Not thread-safe: call from one thread (the analysis executor).
 */
class UdcRunner(
    private val manifest: BundleManifest,
    val plan: List<ComponentSpec>,
    pre: FacePreprocessor,
    noise: NoiseSource?,
    threads: Int,
) : Closeable {
    private val modules = ArrayList<Module>(plan.size)

    /** "input:<name>" and "<component>.<output>" -> the tensor fed to the next forward(). */
    private val values = HashMap<String, EValue>()
    private val outputBuffers = HashMap<String, FloatBuffer>()
    private var args: List<Array<EValue>> = emptyList()
    private var outputKeys: List<Array<String>> = emptyList()
    private var resultIndex = -1

    val stageNames: List<String> = plan.map { it.name }
    val stageMillis = DoubleArray(plan.size)
    val logits = FloatArray(manifest.labels.size)
    val probabilities = FloatArray(manifest.labels.size)
    private val logitsBuffer: FloatBuffer = FloatBuffer.wrap(logits)

    init {
        try {
            setUp(pre, noise, threads)
        } catch (e: Throwable) {
            close() // no half-loaded runner: free what was loaded, then report
            throw e
        }
    }

    /**
     * Refuses up front a bundle whose programs need a backend this runtime lacks (a .pte lowered to Core ML,
     * say): the manifest's backend first, then the backends every program really uses (its method metadata),
     * before any method is loaded. Then wires the inputs and loads every method.
     */
    private fun setUp(pre: FacePreprocessor, noise: NoiseSource?, threads: Int) {
        val registered = ExecuTorchRuntime.getRegisteredBackends().toSet()
        BackendCheck.requiredFor(manifest.backend)?.let { need ->
            if (need !in registered) throw ManifestError(BackendCheck.refusal("this '${manifest.backend}' bundle", listOf(need), registered))
        }
        for (c in plan) {
            val m = Module.load(c.file.absolutePath, Module.LOAD_MODE_MMAP, threads)
            modules.add(m)
            val missing = BackendCheck.missing(m.getMethodMetadata("forward").backends.asIterable(), registered)
            if (missing.isNotEmpty()) throw ManifestError(BackendCheck.refusal("${c.file.name}", missing, registered))
        }
        val p = manifest.preprocessing
        val app = ManifestSyntax.WIRING_APP_INPUT
        values[app + p.imageInput] = EValue.from(Tensor.fromBlob(pre.image, pre.imageShape))
        values[app + p.landmarksInput] = EValue.from(Tensor.fromBlob(pre.landmarks, p.landmarksShape))
        // a DDAMFN bundle has no noise input: nothing to wire (its one component reads input:image only)
        if (noise != null) manifest.noise?.let { values[app + it.input] = EValue.from(Tensor.fromBlob(noise.buffer, noise.shape)) }
        for (c in plan) for (o in c.outputs) {
            val buf = Tensor.allocateFloatBuffer(o.numel)
            outputBuffers["${c.name}.${o.name}"] = buf
            values["${c.name}.${o.name}"] = EValue.from(Tensor.fromBlob(buf, o.shape))
        }
        args = plan.map { c ->
            Array(c.inputs.size) { i ->
                values[c.sources[i]] ?: throw ManifestError("${c.name}.${c.inputs[i].name} comes from '${c.sources[i]}', which this bundle does not make")
            }
        }
        outputKeys = plan.map { c -> Array(c.outputs.size) { k -> "${c.name}.${c.outputs[k].name}" } }
        resultIndex = plan.last().outputs.indexOfFirst { it.name == manifest.result }
        for (m in modules) m.loadMethod("forward") // load (and let XNNPACK pack its weights) before frame 1
    }

    /** One inference on what the buffers hold now; fills [stageMillis], [logits], [probabilities]; returns the argmax. */
    fun run(): Int {
        val last = plan.size - 1
        for (s in plan.indices) {
            val t0 = System.nanoTime()
            val out = modules[s].forward(*args[s])
            stageMillis[s] = (System.nanoTime() - t0) / 1e6
            if (s == last) {
                logitsBuffer.clear()
                out[resultIndex].toTensor().copyDataInto(logitsBuffer)
            } else {
                val keys = outputKeys[s]
                for (k in keys.indices) {
                    val dst = outputBuffers.getValue(keys[k])
                    dst.clear()
                    out[k].toTensor().copyDataInto(dst)
                }
            }
        }
        return softmax()
    }

    private fun softmax(): Int {
        var best = 0
        for (i in logits.indices) if (logits[i] > logits[best]) best = i
        var sum = 0.0
        for (i in logits.indices) { val e = exp((logits[i] - logits[best]).toDouble()); probabilities[i] = e.toFloat(); sum += e }
        for (i in probabilities.indices) probabilities[i] = (probabilities[i] / sum).toFloat()
        return best
    }

    /** Destroys every loaded program; call on the thread that runs [run] (never while it runs). */
    override fun close() {
        modules.forEach { it.destroy() }
        modules.clear()
    }
}
