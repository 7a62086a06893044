import CryptoKit
import Foundation

struct ManifestError: LocalizedError {
    let message: String
    init(_ message: String) { self.message = message }
    var errorDescription: String? { message }
}

/// One tensor of a component as the manifest lists it. Core ML models take their inputs by these names.
struct TensorSpec {
    let name: String
    let shape: [Int]
    let dtype: String
    var count: Int { shape.reduce(1, *) }
}

/// A component package plus, for every input, where its value comes from ("input:<name>" or "<comp>.<output>").
struct ComponentSpec {
    let name: String
    let url: URL
    let sha256: String
    let format: String
    let inputs: [TensorSpec]
    let outputs: [TensorSpec]
    let sources: [String]
}

struct Preprocessing {
    let cropSize: Int
    let imageInput: String
    let scale: Float
    let mean: [Float]
    let std: [Float]
    let alignmentPoints: [Int]
    /// canonical points in crop units, interleaved x, y
    let canonical: [Float]
    let fill: [Float]
    let landmarksInput: String
    let landmarksShape: [Int]
}

struct NoiseSpec {
    let input: String
    let shape: [Int]
    let distribution: String
    var count: Int { shape.reduce(1, *) }
}

/// A udc bundle's manifest.json, read through the key paths of `ManifestKeys` only, and checked for what
/// this app relies on (one message naming the key when something is missing or inconsistent).
final class BundleManifest {
    let directory: URL
    private let root: [String: Any]

    let name: String
    let target: String
    let backend: String
    let quant: String
    let labels: [String]
    let order: [String]
    let fused: String?
    let result: String
    /// Model family; manifests written before the key existed are LRDif.
    let family: String
    /// LRDif's T; nil for a DDAMFN bundle (no diffusion).
    let diffusionSteps: Int?
    let quantizationMode: String?
    let parityPassed: Bool?
    let mediapipeTo68: [Int]
    let preprocessing: Preprocessing
    /// The denoiser's noise input (LRDif); nil when the bundle has none (DDAMFN: the model takes the image only).
    let noise: NoiseSpec?

    init(directory: URL) throws {
        self.directory = directory
        let url = directory.appendingPathComponent(ManifestSyntax.manifestFile)
        guard let data = try? Data(contentsOf: url) else {
            throw ManifestError("\(directory.lastPathComponent) is not a udc bundle: it has no \(ManifestSyntax.manifestFile)")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ManifestError("\(url.path) is not valid JSON")
        }
        root = object
        name = try Self.string(object, ManifestKeys.name)
        target = try Self.string(object, ManifestKeys.target)
        backend = try Self.string(object, ManifestKeys.backend)
        quant = try Self.string(object, ManifestKeys.quant)
        labels = try Self.list(object, ManifestKeys.labels)
        order = try Self.list(object, ManifestKeys.executionOrder)
        fused = Self.at(object, ManifestKeys.executionFused) as? String
        result = try Self.string(object, ManifestKeys.executionResult)
        family = Self.at(object, ManifestKeys.family) as? String ?? ManifestSyntax.familyLrdif
        diffusionSteps = (Self.at(object, ManifestKeys.diffusionSteps) as? NSNumber)?.intValue
        quantizationMode = Self.at(object, ManifestKeys.quantizationMode) as? String
        parityPassed = Self.at(object, ManifestKeys.parityPassed) as? Bool
        mediapipeTo68 = try Self.numbers(object, ManifestKeys.mediapipeTo68).map(\.intValue)
        let canonicalRows: [[NSNumber]] = try Self.list(object, ManifestKeys.canonicalLandmarks)
        preprocessing = Preprocessing(
            cropSize: try Self.number(object, ManifestKeys.cropSize).intValue,
            imageInput: try Self.string(object, ManifestKeys.imageInput),
            scale: try Self.number(object, ManifestKeys.pixelScale).floatValue,
            mean: try Self.numbers(object, ManifestKeys.mean).map(\.floatValue),
            std: try Self.numbers(object, ManifestKeys.std).map(\.floatValue),
            alignmentPoints: try Self.numbers(object, ManifestKeys.alignmentPoints).map(\.intValue),
            canonical: canonicalRows.flatMap { $0.map(\.floatValue) },
            fill: try Self.numbers(object, ManifestKeys.alignmentFill).map(\.floatValue),
            landmarksInput: try Self.string(object, ManifestKeys.landmarksInput),
            landmarksShape: try Self.numbers(object, ManifestKeys.landmarksShape).map(\.intValue))
        if Self.at(object, ManifestKeys.noiseInput) == nil {
            noise = nil  // DDAMFN: no diffusion section, the model takes the image only
        } else {
            noise = NoiseSpec(
                input: try Self.string(object, ManifestKeys.noiseInput),
                shape: try Self.numbers(object, ManifestKeys.noiseShape).map(\.intValue),
                distribution: try Self.string(object, ManifestKeys.noiseDistribution))
        }
    }

    /// The components to run: `order`, or the fused one alone when asked for and present.
    func plan(useFused: Bool) throws -> [ComponentSpec] {
        if useFused, let fused { return [try component(fused)] }
        return try order.map(component)
    }

    func component(_ name: String) throws -> ComponentSpec {
        func tensors(_ namePath: String, _ shapePath: String, _ dtypePath: String?, _ listPath: String) throws -> [TensorSpec] {
            let n = (try Self.list(root, listPath, [name]) as [Any]).count
            return try (0..<n).map { i in
                TensorSpec(name: try Self.string(root, namePath, [name, i]),
                           shape: try Self.numbers(root, shapePath, [name, i]).map(\.intValue),
                           dtype: try dtypePath.map { try Self.string(root, $0, [name, i]) } ?? ManifestSyntax.dtypeFloat32)
            }
        }
        let inputs = try tensors(ManifestKeys.inputName, ManifestKeys.inputShape, ManifestKeys.inputDtype, ManifestKeys.componentInputs)
        let outputs = try tensors(ManifestKeys.outputName, ManifestKeys.outputShape, nil, ManifestKeys.componentOutputs)
        return ComponentSpec(
            name: name,
            url: directory.appendingPathComponent(try Self.string(root, ManifestKeys.componentFile, [name])),
            sha256: try Self.string(root, ManifestKeys.componentSha256, [name]),
            format: try Self.string(root, ManifestKeys.componentFormat, [name]),
            inputs: inputs, outputs: outputs,
            sources: try inputs.map { try wiringSource(name, $0.name) })
    }

    /// Checks what the app relies on; throws naming the first problem.
    func check(useFused: Bool) throws {
        func fail(_ condition: Bool, _ message: @autoclosure () -> String) throws {
            if condition { throw ManifestError(message()) }
        }
        let p = preprocessing
        try fail(try Self.string(root, ManifestKeys.format) != ManifestSyntax.formatValue, "\(ManifestKeys.format) is not \(ManifestSyntax.formatValue)")
        let version = try Self.number(root, ManifestKeys.schemaVersion).intValue
        try fail(version > ManifestSyntax.schemaVersionSupported, "\(ManifestKeys.schemaVersion) \(version) is newer than this app: update it")
        try fail(family != ManifestSyntax.familyLrdif && family != ManifestSyntax.familyDdamfn,
                 "\(ManifestKeys.family) '\(family)' is not a model family this app runs (lrdif, ddamfn): update the app")
        try fail(family == ManifestSyntax.familyLrdif && noise == nil, "an lrdif bundle needs \(ManifestKeys.noiseInput)")
        try fail(Self.at(root, ManifestKeys.partial) != nil,
                 "this bundle holds only some components ('\(ManifestKeys.partial)'): export all of them")
        try fail(target != ManifestSyntax.targetValue,
                 "this is a '\(target)' bundle; the iOS app runs '\(ManifestSyntax.targetValue)' bundles (udc-export --target coreml)")
        try fail(try Self.string(root, ManifestKeys.channelOrder) != ManifestSyntax.channelOrderValue, "\(ManifestKeys.channelOrder) must be RGB")
        try fail(try Self.string(root, ManifestKeys.tensorLayout) != ManifestSyntax.layoutValue, "\(ManifestKeys.tensorLayout) must be NCHW")
        try fail(try Self.string(root, ManifestKeys.executionActivation) != ManifestSyntax.activationSoftmax, "\(ManifestKeys.executionActivation) must be softmax")
        try fail(p.mean.count != 3 || p.std.count != 3 || p.fill.count != 3, "mean, std and fill need 3 values (RGB)")
        let points = p.landmarksShape[p.landmarksShape.count - 2]
        try fail(mediapipeTo68.count != points, "\(ManifestKeys.mediapipeTo68) has \(mediapipeTo68.count) entries, the landmarks input \(points)")
        try fail(mediapipeTo68.contains { $0 < 0 || $0 >= ManifestSyntax.mediapipeMeshPoints },
                 "\(ManifestKeys.mediapipeTo68) indexes outside MediaPipe's \(ManifestSyntax.mediapipeMeshPoints) points")
        try fail(p.canonical.count != points * 2, "\(ManifestKeys.canonicalLandmarks) has \(p.canonical.count / 2) points, expected \(points)")
        try fail(p.alignmentPoints.contains { $0 < 0 || $0 >= points }, "\(ManifestKeys.alignmentPoints) indexes outside 0..<\(points)")
        // the app's tensors: the crop always, the landmarks (they align the crop; LRDif also feeds them to the
        // model) and the noise only when the bundle has one; the wiring decides which a component takes
        var appShapes: [String: [Int]] = [
            p.imageInput: [1, 3, p.cropSize, p.cropSize],
            p.landmarksInput: p.landmarksShape,
        ]
        if let noise = noise { appShapes[noise.input] = noise.shape }
        var produced: [String: TensorSpec] = [:]
        let plan = try plan(useFused: useFused)
        for c in plan {
            try fail(c.format != "mlpackage", "\(c.name) is a .\(c.format) file; this app runs .mlpackage models")
            for (spec, source) in zip(c.inputs, c.sources) {
                try fail(spec.dtype != ManifestSyntax.dtypeFloat32, "\(c.name).\(spec.name) is \(spec.dtype); the app feeds float32")
                let want: [Int]
                if source.hasPrefix(ManifestSyntax.wiringAppInput) {
                    let key = String(source.dropFirst(ManifestSyntax.wiringAppInput.count))
                    guard let shape = appShapes[key] else { throw ManifestError("\(c.name).\(spec.name) wants app input '\(source)', which the app does not make") }
                    want = shape
                } else {
                    guard let t = produced[source] else { throw ManifestError("\(c.name).\(spec.name) comes from '\(source)', not produced earlier") }
                    want = t.shape
                }
                try fail(want != spec.shape, "\(c.name).\(spec.name) has shape \(spec.shape), the app's tensor \(want)")
            }
            for o in c.outputs { produced["\(c.name).\(o.name)"] = o }
        }
        guard let last = plan.last, let out = last.outputs.first(where: { $0.name == result }) else {
            throw ManifestError("the last component has no output '\(result)' (\(ManifestKeys.executionResult))")
        }
        try fail(out.count != labels.count, "'\(result)' has \(out.count) values for \(labels.count) labels")
    }

    /// sha256 of every component package (a directory: the tree hash of udc.sdk.runtime.bundle.tree_sha256).
    func verifyFiles(_ plan: [ComponentSpec]) throws {
        for c in plan {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: c.url.path, isDirectory: &isDir) else {
                throw ManifestError("\(c.name) file \(c.url.lastPathComponent) is missing from \(directory.lastPathComponent)")
            }
            let digest = isDir.boolValue ? try Self.treeSha256(c.url) : try Self.fileSha256(c.url)
            if digest != c.sha256 { throw ManifestError("\(c.url.lastPathComponent) does not match its sha256: copy the bundle again") }
        }
    }

    static func fileSha256(_ url: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 16), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// sha256 over "relative/path\0<sha256 of the file>\n" for every file, sorted by path.
    static func treeSha256(_ url: URL) throws -> String {
        let base = url.resolvingSymlinksInPath().path
        var files: [(String, URL)] = []
        if let walker = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey]) {
            for case let f as URL in walker where (try? f.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true {
                let rel = String(f.resolvingSymlinksInPath().path.dropFirst(base.count + 1))
                files.append((rel, f))
            }
        }
        var hasher = SHA256()
        for (rel, f) in files.sorted(by: { Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8)) }) {
            hasher.update(data: Data(rel.utf8) + Data([0]) + Data(try fileSha256(f).utf8) + Data("\n".utf8))
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    // MARK: - the path resolver

    /// The value at `path` (grammar in ManifestKeys), "*" and "[]" segments taking `subs` in order; nil if absent.
    static func at(_ root: [String: Any], _ path: String, _ subs: [Any] = []) -> Any? {
        var node: Any? = root
        var k = 0
        for segment in path.split(separator: ".").map(String.init) {
            let isIndex = segment.hasSuffix("[]")
            let key = segment == "*" ? (subs[k] as? String ?? "") : (isIndex ? String(segment.dropLast(2)) : segment)
            if segment == "*" { k += 1 }
            node = (node as? [String: Any])?[key]
            if isIndex {
                let i = subs[k] as? Int ?? -1
                k += 1
                guard let array = node as? [Any], array.indices.contains(i) else { return nil }
                node = array[i]
            }
            if node == nil || node is NSNull { return nil }
        }
        return node
    }

    private static func describe(_ path: String, _ subs: [Any]) -> String {
        var k = 0
        return path.split(separator: ".").map { s -> String in
            if s == "*" { defer { k += 1 }; return "\(subs[k])" }
            if s.hasSuffix("[]") { defer { k += 1 }; return "\(s.dropLast(2))[\(subs[k])]" }
            return String(s)
        }.joined(separator: ".")
    }

    private static func require(_ root: [String: Any], _ path: String, _ subs: [Any]) throws -> Any {
        guard let v = at(root, path, subs) else { throw ManifestError("\(ManifestSyntax.manifestFile) has no '\(describe(path, subs))'") }
        return v
    }

    private static func string(_ root: [String: Any], _ path: String, _ subs: [Any] = []) throws -> String {
        guard let s = try require(root, path, subs) as? String else { throw ManifestError("'\(describe(path, subs))' is not a string") }
        return s
    }

    private static func number(_ root: [String: Any], _ path: String, _ subs: [Any] = []) throws -> NSNumber {
        guard let n = try require(root, path, subs) as? NSNumber else { throw ManifestError("'\(describe(path, subs))' is not a number") }
        return n
    }

    private static func list<T>(_ root: [String: Any], _ path: String, _ subs: [Any] = []) throws -> [T] {
        guard let a = try require(root, path, subs) as? [T] else { throw ManifestError("'\(describe(path, subs))' is not a list of \(T.self)") }
        return a
    }

    private static func numbers(_ root: [String: Any], _ path: String, _ subs: [Any] = []) throws -> [NSNumber] {
        try list(root, path, subs)
    }

    /// wiring["<component>.<input>"]: the wiring object's keys are data (component and input names), not paths.
    private func wiringSource(_ component: String, _ input: String) throws -> String {
        guard let wiring = Self.at(root, ManifestKeys.wiring) as? [String: Any] else { throw ManifestError("'\(ManifestKeys.wiring)' is missing") }
        guard let source = wiring["\(component).\(input)"] as? String else {
            throw ManifestError("'\(ManifestKeys.wiring)' does not say where \(component).\(input) comes from")
        }
        return source
    }
}
