package org.udc.demo

import java.io.File
import java.security.MessageDigest
import org.json.JSONArray
import org.json.JSONException
import org.json.JSONObject

class ManifestError(message: String) : Exception(message)

/** One tensor of a component, as the manifest lists it (the .pte takes its inputs in this order). */
class TensorSpec(val name: String, val shape: LongArray, val dtype: String) {
    val numel: Int = shape.fold(1L) { a, b -> a * b }.toInt()
    override fun toString() = "$name${shape.joinToString(",", "[", "]")} $dtype"
}

/** A component file plus, for every input, where its value comes from ("input:<name>" or "<comp>.<output>"). */
class ComponentSpec(
    val name: String,
    val file: File,
    val sha256: String,
    val sizeBytes: Long,
    val format: String,
    val inputs: List<TensorSpec>,
    val outputs: List<TensorSpec>,
    val sources: List<String>,
)

class Preprocessing(
    val cropSize: Int,
    val imageInput: String,
    val scale: Float,
    val mean: FloatArray,
    val std: FloatArray,
    val alignmentPoints: IntArray,
    /** canonical 68 points, crop units, interleaved x, y */
    val canonical: FloatArray,
    val fill: FloatArray,
    val landmarksInput: String,
    val landmarksShape: LongArray,
)

class NoiseSpec(val input: String, val shape: LongArray, val distribution: String) {
    val numel: Int = shape.fold(1L) { a, b -> a * b }.toInt()
}

/**
 * A udc bundle's manifest.json, read through the key paths of [ManifestKeys] only, and checked for
 * what this app relies on (one message naming the key when something is missing or inconsistent).
 */
class BundleManifest private constructor(val dir: File, private val root: JSONObject) {

    val name: String = string(ManifestKeys.NAME)
    /** Model family; manifests written before the key existed are LRDif. */
    val family: String = (at(ManifestKeys.FAMILY) as? String) ?: ManifestSyntax.FAMILY_LRDIF
    val target: String = string(ManifestKeys.TARGET)
    val backend: String = string(ManifestKeys.BACKEND)
    val quant: String = string(ManifestKeys.QUANT)
    val labels: List<String> = stringList(ManifestKeys.LABELS)
    val order: List<String> = stringList(ManifestKeys.EXECUTION_ORDER)
    val fused: String? = at(ManifestKeys.EXECUTION_FUSED) as? String
    val result: String = string(ManifestKeys.EXECUTION_RESULT)
    /** LRDif's T; null for a DDAMFN bundle (no diffusion). */
    val diffusionSteps: Int? = (at(ManifestKeys.DIFFUSION_STEPS) as? Number)?.toInt()
    val exporterExecutorch: String? = at(ManifestKeys.EXPORTER_EXECUTORCH) as? String
    val parityPassed: Boolean? = at(ManifestKeys.PARITY_PASSED) as? Boolean
    val mediapipeTo68: IntArray = intList(ManifestKeys.MEDIAPIPE_TO_68)

    val preprocessing = Preprocessing(
        cropSize = int(ManifestKeys.CROP_SIZE),
        imageInput = string(ManifestKeys.IMAGE_INPUT),
        scale = double(ManifestKeys.PIXEL_SCALE).toFloat(),
        mean = floatList(ManifestKeys.MEAN),
        std = floatList(ManifestKeys.STD),
        alignmentPoints = intList(ManifestKeys.ALIGNMENT_POINTS),
        canonical = canonicalPoints(),
        fill = floatList(ManifestKeys.ALIGNMENT_FILL),
        landmarksInput = string(ManifestKeys.LANDMARKS_INPUT),
        landmarksShape = longList(ManifestKeys.LANDMARKS_SHAPE),
    )

    /** The denoiser's noise input (LRDif); null when the bundle has none (DDAMFN: the model takes the image only). */
    val noise: NoiseSpec? = if (at(ManifestKeys.NOISE_INPUT) == null) null else NoiseSpec(
        input = string(ManifestKeys.NOISE_INPUT),
        shape = longList(ManifestKeys.NOISE_SHAPE),
        distribution = string(ManifestKeys.NOISE_DISTRIBUTION),
    )

    /** The components to run: [order], or the fused one alone when asked for and present. */
    fun plan(useFused: Boolean): List<ComponentSpec> =
        if (useFused && fused != null) listOf(component(fused)) else order.map { component(it) }

    fun component(name: String): ComponentSpec {
        val inputs = tensors(ManifestKeys.INPUT_NAME, ManifestKeys.INPUT_SHAPE, ManifestKeys.INPUT_DTYPE,
            count(ManifestKeys.COMPONENT_INPUTS, name), name)
        val outputs = tensors(ManifestKeys.OUTPUT_NAME, ManifestKeys.OUTPUT_SHAPE, null,
            count(ManifestKeys.COMPONENT_OUTPUTS, name), name)
        return ComponentSpec(
            name = name,
            file = File(dir, string(ManifestKeys.COMPONENT_FILE, name)),
            sha256 = string(ManifestKeys.COMPONENT_SHA256, name),
            sizeBytes = (require(ManifestKeys.COMPONENT_SIZE, name) as Number).toLong(),
            format = string(ManifestKeys.COMPONENT_FORMAT, name),
            inputs = inputs,
            outputs = outputs,
            sources = inputs.map { wiringSource(name, it.name) },
        )
    }

    /** Checks what the app relies on; throws [ManifestError] naming the first problem. */
    fun check(usesFused: Boolean) {
        val p = preprocessing
        fail(string(ManifestKeys.FORMAT) != ManifestSyntax.FORMAT_VALUE) { "${ManifestKeys.FORMAT} is not ${ManifestSyntax.FORMAT_VALUE}" }
        fail(int(ManifestKeys.SCHEMA_VERSION) > ManifestSyntax.SCHEMA_VERSION_SUPPORTED) {
            "${ManifestKeys.SCHEMA_VERSION} ${int(ManifestKeys.SCHEMA_VERSION)} is newer than this app (${ManifestSyntax.SCHEMA_VERSION_SUPPORTED}): update the app"
        }
        fail(family != ManifestSyntax.FAMILY_LRDIF && family != ManifestSyntax.FAMILY_DDAMFN) {
            "${ManifestKeys.FAMILY} '$family' is not a model family this app runs (lrdif, ddamfn): update the app"
        }
        fail(family == ManifestSyntax.FAMILY_LRDIF && noise == null) { "an lrdif bundle needs ${ManifestKeys.NOISE_INPUT}" }
        fail(at(ManifestKeys.PARTIAL) != null) { "this bundle holds only some components ('${ManifestKeys.PARTIAL}'): export all of them" }
        fail(target != ManifestSyntax.TARGET_VALUE) {
            "this is a '$target' bundle; the Android app runs '${ManifestSyntax.TARGET_VALUE}' bundles (udc-export --target executorch)"
        }
        fail(string(ManifestKeys.CHANNEL_ORDER) != ManifestSyntax.CHANNEL_ORDER_VALUE) { "${ManifestKeys.CHANNEL_ORDER} must be RGB" }
        fail(string(ManifestKeys.TENSOR_LAYOUT) != ManifestSyntax.LAYOUT_VALUE) { "${ManifestKeys.TENSOR_LAYOUT} must be NCHW" }
        fail(string(ManifestKeys.EXECUTION_ACTIVATION) != ManifestSyntax.ACTIVATION_SOFTMAX) { "${ManifestKeys.EXECUTION_ACTIVATION} must be softmax" }
        fail(p.mean.size != 3 || p.std.size != 3 || p.fill.size != 3) { "mean, std and fill need 3 values (RGB)" }
        val points = p.landmarksShape[p.landmarksShape.size - 2].toInt()
        fail(mediapipeTo68.size != points) { "${ManifestKeys.MEDIAPIPE_TO_68} has ${mediapipeTo68.size} entries, the landmarks input $points" }
        fail(mediapipeTo68.any { it !in 0 until ManifestSyntax.MEDIAPIPE_MESH_POINTS }) {
            "${ManifestKeys.MEDIAPIPE_TO_68} indexes outside MediaPipe's ${ManifestSyntax.MEDIAPIPE_MESH_POINTS} points"
        }
        fail(p.canonical.size != points * 2) { "${ManifestKeys.CANONICAL_LANDMARKS} has ${p.canonical.size / 2} points, expected $points" }
        fail(p.alignmentPoints.any { it !in 0 until points }) { "${ManifestKeys.ALIGNMENT_POINTS} indexes outside 0..${points - 1}" }
        // the app's tensors: the crop always, the landmarks (they align the crop; LRDif also feeds them to the
        // model) and the noise only when the bundle has one; the wiring decides which a component takes
        val appShapes = buildMap {
            put(p.imageInput, longArrayOf(1, 3, p.cropSize.toLong(), p.cropSize.toLong()))
            put(p.landmarksInput, p.landmarksShape)
            noise?.let { put(it.input, it.shape) }
        }
        val plan = plan(usesFused)
        val produced = HashMap<String, TensorSpec>()
        for (c in plan) {
            fail(c.format != "pte") { "${c.name} is a .${c.format} file; this app runs .pte programs" }
            for ((spec, src) in c.inputs.zip(c.sources)) {
                fail(spec.dtype != ManifestSyntax.DTYPE_FLOAT32) { "${c.name}.${spec.name} is ${spec.dtype}; the app feeds float32" }
                val want = if (src.startsWith(ManifestSyntax.WIRING_APP_INPUT)) {
                    appShapes[src.removePrefix(ManifestSyntax.WIRING_APP_INPUT)]
                        ?: throw ManifestError("${c.name}.${spec.name} wants app input '$src', which the app does not make")
                } else {
                    (produced[src] ?: throw ManifestError("${c.name}.${spec.name} comes from '$src', not produced earlier in ${ManifestKeys.EXECUTION_ORDER}")).shape
                }
                fail(!want.contentEquals(spec.shape)) {
                    "${c.name}.${spec.name} has shape ${spec.shape.contentToString()}, the app's tensor ${want.contentToString()}"
                }
            }
            c.outputs.forEach { produced["${c.name}.${it.name}"] = it }
        }
        val last = plan.last()
        val out = last.outputs.firstOrNull { it.name == result }
            ?: throw ManifestError("${last.name} has no output '$result' (${ManifestKeys.EXECUTION_RESULT})")
        fail(out.numel != labels.size) { "'$result' has ${out.numel} values for ${labels.size} labels" }
    }

    /** sha256 of every component file of the plan against the manifest (tampered / truncated copies). */
    fun verifyFiles(plan: List<ComponentSpec>) {
        for (c in plan) {
            fail(!c.file.isFile) { "${c.name} file ${c.file.name} is missing from ${dir.name}" }
            fail(c.file.length() != c.sizeBytes) { "${c.file.name} is ${c.file.length()} bytes, the manifest says ${c.sizeBytes}: copy it again" }
            val md = MessageDigest.getInstance("SHA-256")
            val buf = ByteArray(1 shl 16)
            c.file.inputStream().use { s -> while (true) { val n = s.read(buf); if (n < 0) break; md.update(buf, 0, n) } }
            val hex = md.digest().joinToString("") { "%02x".format(it) }
            fail(hex != c.sha256) { "${c.file.name} does not match its sha256: copy the bundle again" }
        }
    }

    // ------------------------------------------------------------------ the path resolver

    /** The value at [path] (grammar in [ManifestKeys]), `*` and `[]` segments taking [subs] in order; null if absent. */
    fun at(path: String, vararg subs: Any): Any? {
        var node: Any? = root
        var k = 0
        for (segment in path.split('.')) {
            val key = if (segment == "*") subs[k++] as String else segment.removeSuffix("[]")
            node = (node as? JSONObject)?.opt(key)
            if (segment.endsWith("[]")) node = (node as? JSONArray)?.opt(subs[k++] as Int)
            if (node == null || node == JSONObject.NULL) return null
        }
        return node
    }

    private fun describe(path: String, subs: Array<out Any>): String {
        var k = 0
        return path.split('.').joinToString(".") { s ->
            when {
                s == "*" -> subs[k++].toString()
                s.endsWith("[]") -> s.removeSuffix("[]") + "[" + subs[k++] + "]"
                else -> s
            }
        }
    }

    private fun require(path: String, vararg subs: Any): Any =
        at(path, *subs) ?: throw ManifestError("${ManifestSyntax.MANIFEST_FILE} of ${dir.name} has no '${describe(path, subs)}'")

    private fun string(path: String, vararg subs: Any): String =
        require(path, *subs) as? String ?: throw ManifestError("'${describe(path, subs)}' is not a string")

    private fun int(path: String, vararg subs: Any): Int =
        (require(path, *subs) as? Number)?.toInt() ?: throw ManifestError("'${describe(path, subs)}' is not a number")

    private fun double(path: String, vararg subs: Any): Double =
        (require(path, *subs) as? Number)?.toDouble() ?: throw ManifestError("'${describe(path, subs)}' is not a number")

    private fun array(path: String, vararg subs: Any): JSONArray =
        require(path, *subs) as? JSONArray ?: throw ManifestError("'${describe(path, subs)}' is not a list")

    private fun count(path: String, vararg subs: Any): Int = array(path, *subs).length()

    private fun stringList(path: String, vararg subs: Any): List<String> = array(path, *subs).let { a -> List(a.length()) { a.getString(it) } }

    private fun intList(path: String, vararg subs: Any): IntArray = array(path, *subs).let { a -> IntArray(a.length()) { a.getInt(it) } }

    private fun longList(path: String, vararg subs: Any): LongArray = array(path, *subs).let { a -> LongArray(a.length()) { a.getLong(it) } }

    private fun floatList(path: String, vararg subs: Any): FloatArray = array(path, *subs).let { a -> FloatArray(a.length()) { a.getDouble(it).toFloat() } }

    private fun canonicalPoints(): FloatArray {
        val a = array(ManifestKeys.CANONICAL_LANDMARKS)
        return FloatArray(a.length() * 2) { i -> a.getJSONArray(i / 2).getDouble(i % 2).toFloat() }
    }

    private fun tensors(namePath: String, shapePath: String, dtypePath: String?, n: Int, comp: String) = List(n) { i ->
        TensorSpec(string(namePath, comp, i), longList(shapePath, comp, i),
            if (dtypePath == null) ManifestSyntax.DTYPE_FLOAT32 else string(dtypePath, comp, i))
    }

    /** wiring["<component>.<input>"]: the wiring object's keys are data (component and input names), not paths. */
    private fun wiringSource(component: String, input: String): String {
        val wiring = require(ManifestKeys.WIRING) as? JSONObject ?: throw ManifestError("'${ManifestKeys.WIRING}' is not an object")
        val src = wiring.opt("$component.$input") as? String
        return src ?: throw ManifestError("'${ManifestKeys.WIRING}' does not say where $component.$input comes from")
    }

    private inline fun fail(condition: Boolean, message: () -> String) {
        if (condition) throw ManifestError(message())
    }

    companion object {
        fun load(dir: File): BundleManifest {
            val file = File(dir, ManifestSyntax.MANIFEST_FILE)
            if (!file.isFile) throw ManifestError("$dir is not a udc bundle: it has no ${ManifestSyntax.MANIFEST_FILE}")
            val root = try {
                JSONObject(file.readText())
            } catch (e: JSONException) {
                throw ManifestError("${file.path} is not valid JSON: ${e.message}")
            }
            return BundleManifest(dir, root)
        }
    }
}
