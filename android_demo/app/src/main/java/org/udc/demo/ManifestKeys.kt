package org.udc.demo

/**
 * Every manifest.json key this app reads, as a path (the contract with udc-export).
 *
 * Path grammar (the same in ios_demo/UDCDemo/ManifestKeys.swift): segments split on '.', a segment `*`
 * stands for a component name, `[]` for an array index; [BundleManifest.at] resolves a path with the
 * values of its `*` / `[]` segments in order. No other file of the app names a manifest key:
 * tests/test_app_contract.py parses the `const val` lines below and checks every path against
 * sdk/data/manifest.schema.json (and that non-optional ones are required there) and against a manifest
 * that udc-export really wrote, so a rename on either side fails the test suite.
 * A trailing `// optional` marks a key the app can do without.
 */
object ManifestKeys {
    const val SCHEMA_VERSION = "schema_version"
    const val FORMAT = "format"
    const val NAME = "name"
    /** "lrdif" (four components, landmarks + noise inputs) or "ddamfn" (one component, image only); absent = lrdif. */
    const val FAMILY = "family" // optional
    const val TARGET = "target"
    const val BACKEND = "backend"
    const val QUANT = "quant"
    const val LABELS = "labels"
    /** Present only in a debugging export of some components (udc-export --components): the app refuses it. */
    const val PARTIAL = "partial" // optional

    const val COMPONENT_FILE = "components.*.file"
    const val COMPONENT_SHA256 = "components.*.sha256"
    const val COMPONENT_SIZE = "components.*.size_bytes"
    const val COMPONENT_FORMAT = "components.*.format"
    const val COMPONENT_INPUTS = "components.*.inputs"
    const val INPUT_NAME = "components.*.inputs[].name"
    const val INPUT_SHAPE = "components.*.inputs[].shape"
    const val INPUT_DTYPE = "components.*.inputs[].dtype"
    const val COMPONENT_OUTPUTS = "components.*.outputs"
    const val OUTPUT_NAME = "components.*.outputs[].name"
    const val OUTPUT_SHAPE = "components.*.outputs[].shape"

    /** "<component>.<input>" -> "input:<name>" (an app tensor) or "<component>.<output>". */
    const val WIRING = "wiring"
    const val EXECUTION_ORDER = "execution.order"
    const val EXECUTION_FUSED = "execution.fused" // optional
    const val EXECUTION_RESULT = "execution.result"
    const val EXECUTION_ACTIVATION = "execution.activation"

    const val CROP_SIZE = "preprocessing.crop_size"
    const val CHANNEL_ORDER = "preprocessing.channel_order"
    const val TENSOR_LAYOUT = "preprocessing.layout"
    const val IMAGE_INPUT = "preprocessing.input"
    const val PIXEL_SCALE = "preprocessing.scale"
    const val MEAN = "preprocessing.mean"
    const val STD = "preprocessing.std"
    const val ALIGNMENT_POINTS = "preprocessing.alignment.alignment_points"
    const val CANONICAL_LANDMARKS = "preprocessing.alignment.canonical_landmarks"
    const val ALIGNMENT_FILL = "preprocessing.alignment.fill"
    const val LANDMARKS_INPUT = "preprocessing.landmarks.input"
    const val LANDMARKS_SHAPE = "preprocessing.landmarks.shape"

    /** LRDif only: a DDAMFN bundle has no diffusion section (BundleManifest.check requires it for lrdif). */
    const val DIFFUSION_STEPS = "diffusion.steps" // optional
    const val NOISE_INPUT = "diffusion.noise.input" // optional
    const val NOISE_SHAPE = "diffusion.noise.shape" // optional
    const val NOISE_DISTRIBUTION = "diffusion.noise.distribution" // optional

    const val MEDIAPIPE_TO_68 = "landmark_layout.mediapipe_to_68.indices"

    const val EXPORTER_EXECUTORCH = "tools.executorch" // optional
    const val PARITY_PASSED = "parity.passed" // optional
}

/** Values and syntax of the manifest that are not key paths (checked by the same test). */
object ManifestSyntax {
    const val MANIFEST_FILE = "manifest.json"
    const val FORMAT_VALUE = "udc-bundle"
    const val SCHEMA_VERSION_SUPPORTED = 1
    const val TARGET_VALUE = "executorch"
    const val WIRING_APP_INPUT = "input:"
    const val CHANNEL_ORDER_VALUE = "RGB"
    const val LAYOUT_VALUE = "NCHW"
    const val ACTIVATION_SOFTMAX = "softmax"
    const val DTYPE_FLOAT32 = "float32"
    const val FAMILY_LRDIF = "lrdif"
    const val FAMILY_DDAMFN = "ddamfn"
    /** MediaPipe FaceLandmarker's mesh: 468 points + 10 iris points; mediapipe_to_68 must index inside it. */
    const val MEDIAPIPE_MESH_POINTS = 478
}
