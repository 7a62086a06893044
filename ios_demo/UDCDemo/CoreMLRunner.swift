import CoreML
import Foundation

/// Compute units the user can pick (MLModelConfiguration.computeUnits).
enum ComputeChoice: String, CaseIterable, Identifiable {
    case all = "All"
    case cpuAndNeuralEngine = "CPU+NE"
    case cpuOnly = "CPU"
    var id: String { rawValue }
    var units: MLComputeUnits {
        switch self {
        case .all: return .all
        case .cpuAndNeuralEngine: return .cpuAndNeuralEngine
        case .cpuOnly: return .cpuOnly
        }
    }
}

/// Feeds a model by input name from arrays fixed at load time (their contents change in place).
private final class ArrayProvider: NSObject, MLFeatureProvider {
    let values: [String: MLFeatureValue]
    let featureNames: Set<String>
    init(_ arrays: [String: MLMultiArray]) {
        values = arrays.mapValues { MLFeatureValue(multiArray: $0) }
        featureNames = Set(arrays.keys)
    }
    func featureValue(for featureName: String) -> MLFeatureValue? { values[featureName] }
}

/// Runs a bundle's .mlpackage components in the manifest's order (or the fused pipeline alone) with Core ML.
///
/// Core ML takes inputs by name: every model's inputs are the manifest's input names (checked at load
/// against the compiled model's description), each fed from the array the wiring names: an app tensor (crop,
/// landmarks, noise) or an earlier component's output. Outputs are written into arrays allocated once
/// (MLPredictionOptions.outputBackings) in the type the model declares (fp16 programs may output Float16).
final class CoreMLRunner {
    struct Stage {
        let spec: ComponentSpec
        let model: MLModel
        let provider: MLFeatureProvider
        let options: MLPredictionOptions
        /// after predict: copy (with fp16 -> fp32 conversion) output k into these inputs of later stages
        let handoffs: [(from: MLMultiArray, to: MLMultiArray)]
    }

    let stages: [Stage]
    let stageNames: [String]
    private(set) var stageMillis: [Double]
    private(set) var logits: [Float]
    private(set) var probabilities: [Float]
    private let resultArray: MLMultiArray

    static func load(manifest: BundleManifest, plan: [ComponentSpec], units: MLComputeUnits,
                     pre: FacePreprocessor, noise: NoiseSource?) async throws -> CoreMLRunner {
        let config = MLModelConfiguration()
        config.computeUnits = units
        var models: [MLModel] = []
        for c in plan {
            try Task.checkCancellation()  // a newer choice of compute units / fused replaced this load
            let compiled = try await compiledModel(c)
            models.append(try MLModel(contentsOf: compiled, configuration: config))
        }
        return try CoreMLRunner(manifest: manifest, plan: plan, models: models, pre: pre, noise: noise)
    }

    /// .mlpackage -> .mlmodelc, compiled on the device once and kept in Application Support by sha256.
    /// Loads are serialised by DemoModel (one at a time), and the compiled model is moved into place in one
    /// rename; if the name is taken anyway (an earlier run), the existing copy is used and ours discarded.
    private static func compiledModel(_ c: ComponentSpec) async throws -> URL {
        let fm = FileManager.default
        let cache = try fm.url(for: .applicationSupportDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
            .appendingPathComponent("compiled", isDirectory: true)
        try fm.createDirectory(at: cache, withIntermediateDirectories: true)
        let dest = cache.appendingPathComponent("\(c.sha256).mlmodelc", isDirectory: true)
        if fm.fileExists(atPath: dest.path) { return dest }
        try Task.checkCancellation()
        let temp = try await MLModel.compileModel(at: c.url)
        do {
            try fm.moveItem(at: temp, to: dest)
        } catch where fm.fileExists(atPath: dest.path) {
            try? fm.removeItem(at: temp)
        }
        return dest
    }

    private init(manifest: BundleManifest, plan: [ComponentSpec], models: [MLModel], pre: FacePreprocessor, noise: NoiseSource?) throws {
        let p = manifest.preprocessing
        let app = ManifestSyntax.wiringAppInput
        var appArrays: [String: MLMultiArray] = [app + p.imageInput: pre.image, app + p.landmarksInput: pre.landmarks]
        // a DDAMFN bundle has no noise input: nothing to wire (its one component reads input:image only)
        if let noise = noise, let spec = manifest.noise { appArrays[app + spec.input] = noise.array }
        // one array per produced output, in the type the model declares
        var produced: [String: MLMultiArray] = [:]
        var backings: [[String: MLMultiArray]] = []
        for (c, model) in zip(plan, models) {
            var b: [String: MLMultiArray] = [:]
            for o in c.outputs {
                guard let d = model.modelDescription.outputDescriptionsByName[o.name], let constraint = d.multiArrayConstraint else {
                    throw ManifestError("\(c.name): the model has no output '\(o.name)' that the manifest lists")
                }
                let array = try MLMultiArray(shape: o.shape.map { NSNumber(value: $0) }, dataType: constraint.dataType)
                b[o.name] = array
                produced["\(c.name).\(o.name)"] = array
            }
            backings.append(b)
        }
        // inputs by name; an earlier output feeds a later input directly when the types agree, else through a copy
        var stages: [Stage] = []
        var handoffsByProducer: [String: [(from: MLMultiArray, to: MLMultiArray)]] = [:]
        var inputsPerStage: [[String: MLMultiArray]] = []
        for (c, model) in zip(plan, models) {
            var arrays: [String: MLMultiArray] = [:]
            for (spec, source) in zip(c.inputs, c.sources) {
                guard let d = model.modelDescription.inputDescriptionsByName[spec.name], let constraint = d.multiArrayConstraint else {
                    throw ManifestError("\(c.name): the model has no input '\(spec.name)' that the manifest lists")
                }
                guard constraint.shape.map(\.intValue) == spec.shape else {
                    throw ManifestError("\(c.name).\(spec.name): the model wants \(constraint.shape), the manifest says \(spec.shape)")
                }
                if let a = appArrays[source] {
                    guard constraint.dataType == .float32 else { throw ManifestError("\(c.name).\(spec.name) is not float32 in the model") }
                    arrays[spec.name] = a
                } else if let out = produced[source] {
                    if out.dataType == constraint.dataType {
                        arrays[spec.name] = out
                    } else {
                        let copy = try MLMultiArray(shape: spec.shape.map { NSNumber(value: $0) }, dataType: constraint.dataType)
                        arrays[spec.name] = copy
                        handoffsByProducer[String(source.split(separator: ".")[0]), default: []].append((from: out, to: copy))
                    }
                } else {
                    throw ManifestError("\(c.name).\(spec.name) comes from '\(source)', which nothing makes")
                }
            }
            inputsPerStage.append(arrays)
        }
        for (i, c) in plan.enumerated() {
            let options = MLPredictionOptions()
            options.outputBackings = backings[i]
            stages.append(Stage(spec: c, model: models[i], provider: ArrayProvider(inputsPerStage[i]), options: options,
                                handoffs: handoffsByProducer[c.name] ?? []))
        }
        guard let result = backings.last?[manifest.result] else {
            throw ManifestError("the last component has no output '\(manifest.result)'")
        }
        self.stages = stages
        stageNames = plan.map(\.name)
        stageMillis = [Double](repeating: 0, count: plan.count)
        resultArray = result
        logits = [Float](repeating: 0, count: manifest.labels.count)
        probabilities = logits
    }

    /// One inference on what the arrays hold now; fills stageMillis, logits, probabilities; returns the argmax.
    @discardableResult
    func run() throws -> Int {
        for (i, stage) in stages.enumerated() {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = try stage.model.prediction(from: stage.provider, options: stage.options)
            stageMillis[i] = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            for h in stage.handoffs { Self.convert(h.from, into: h.to) }
        }
        Self.readFloats(resultArray, into: &logits)
        var best = 0
        for i in logits.indices where logits[i] > logits[best] { best = i }
        var sum: Float = 0
        for i in logits.indices { probabilities[i] = exp(logits[i] - logits[best]); sum += probabilities[i] }
        for i in probabilities.indices { probabilities[i] /= sum }
        return best
    }

    /// Values of a (contiguous) Float32 or Float16 array into `out`.
    static func readFloats(_ a: MLMultiArray, into out: inout [Float]) {
        let n = min(out.count, a.count)
        switch a.dataType {
        case .float16:
            a.withUnsafeBufferPointer(ofType: Float16.self) { p in for i in 0..<n { out[i] = Float(p[i]) } }
        case .float32:
            a.withUnsafeBufferPointer(ofType: Float.self) { p in for i in 0..<n { out[i] = p[i] } }
        default:
            for i in 0..<n { out[i] = a[i].floatValue }
        }
    }

    private static func convert(_ src: MLMultiArray, into dst: MLMultiArray) {
        let n = min(src.count, dst.count)
        switch (src.dataType, dst.dataType) {
        case (.float16, .float32):
            src.withUnsafeBufferPointer(ofType: Float16.self) { s in
                dst.withUnsafeMutableBufferPointer(ofType: Float.self) { d, _ in for i in 0..<n { d[i] = Float(s[i]) } }
            }
        case (.float32, .float16):
            src.withUnsafeBufferPointer(ofType: Float.self) { s in
                dst.withUnsafeMutableBufferPointer(ofType: Float16.self) { d, _ in for i in 0..<n { d[i] = Float16(s[i]) } }
            }
        default:
            for i in 0..<n { dst[i] = src[i] }
        }
    }
}
