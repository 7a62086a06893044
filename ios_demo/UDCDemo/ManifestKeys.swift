// Every manifest.json key this app reads, as a path (the contract with udc-export).
//
// Path grammar (the same in android_demo/.../ManifestKeys.kt): segments split on ".", a segment "*" stands
// for a component name, "[]" for an array index; BundleManifest.at(_:_:) resolves a path with the values
// of its "*" / "[]" segments in order. No other file of the app names a manifest key:
// tests/test_app_contract.py parses the `static let` lines below and checks every path against
// sdk/data/manifest.schema.json (and that non-optional ones are required there) and against a manifest
// that udc-export really wrote, so a rename on either side fails the test suite.
// A trailing `// optional` marks a key the app can do without.

enum ManifestKeys {
    static let schemaVersion = "schema_version"
    static let format = "format"
    static let name = "name"
    /// "lrdif" (four components, landmarks + noise inputs) or "ddamfn" (one component, image only); absent = lrdif.
    static let family = "family"  // optional
    static let target = "target"
    static let backend = "backend"
    static let quant = "quant"
    static let labels = "labels"
    /// Present only in a debugging export of some components (udc-export --components): the app refuses it.
    static let partial = "partial"  // optional

    static let componentFile = "components.*.file"
    static let componentSha256 = "components.*.sha256"
    static let componentFormat = "components.*.format"
    static let componentInputs = "components.*.inputs"
    static let inputName = "components.*.inputs[].name"
    static let inputShape = "components.*.inputs[].shape"
    static let inputDtype = "components.*.inputs[].dtype"
    static let componentOutputs = "components.*.outputs"
    static let outputName = "components.*.outputs[].name"
    static let outputShape = "components.*.outputs[].shape"

    /// "<component>.<input>" -> "input:<name>" (an app tensor) or "<component>.<output>".
    static let wiring = "wiring"
    static let executionOrder = "execution.order"
    static let executionFused = "execution.fused"  // optional
    static let executionResult = "execution.result"
    static let executionActivation = "execution.activation"

    static let cropSize = "preprocessing.crop_size"
    static let channelOrder = "preprocessing.channel_order"
    static let tensorLayout = "preprocessing.layout"
    static let imageInput = "preprocessing.input"
    static let pixelScale = "preprocessing.scale"
    static let mean = "preprocessing.mean"
    static let std = "preprocessing.std"
    static let alignmentPoints = "preprocessing.alignment.alignment_points"
    static let canonicalLandmarks = "preprocessing.alignment.canonical_landmarks"
    static let alignmentFill = "preprocessing.alignment.fill"
    static let landmarksInput = "preprocessing.landmarks.input"
    static let landmarksShape = "preprocessing.landmarks.shape"

    /// LRDif only: a DDAMFN bundle has no diffusion section (BundleManifest.check requires it for lrdif).
    static let diffusionSteps = "diffusion.steps"  // optional
    static let noiseInput = "diffusion.noise.input"  // optional
    static let noiseShape = "diffusion.noise.shape"  // optional
    static let noiseDistribution = "diffusion.noise.distribution"  // optional

    static let mediapipeTo68 = "landmark_layout.mediapipe_to_68.indices"

    static let quantizationMode = "quantization.mode"  // optional
    static let parityPassed = "parity.passed"  // optional
}

/// Values and syntax of the manifest that are not key paths (checked by the same test).
enum ManifestSyntax {
    static let manifestFile = "manifest.json"
    static let formatValue = "udc-bundle"
    static let schemaVersionSupported = 1
    static let targetValue = "coreml"
    static let wiringAppInput = "input:"
    static let channelOrderValue = "RGB"
    static let layoutValue = "NCHW"
    static let activationSoftmax = "softmax"
    static let dtypeFloat32 = "float32"
    static let familyLrdif = "lrdif"
    static let familyDdamfn = "ddamfn"
    /// MediaPipe FaceLandmarker's mesh: 468 points + 10 iris points; mediapipe_to_68 must index inside it.
    static let mediapipeMeshPoints = 478
}
