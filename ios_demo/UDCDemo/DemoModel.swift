import AVFoundation
import CoreML
import Foundation

/// What the overlay draws for one frame.
struct OverlayState {
    var frameSize = CGSize.zero
    var hasFace = false
    var box = CGRect.zero
    var points: [CGPoint] = []
    var label = ""
    var confidence: Float = 0
    var landmarkerMs = 0.0
    var preprocessMs = 0.0
    var stages: [(String, Double)] = []
}

/// Whether the app may use the camera, and what to tell the user when it may not.
enum CameraAccess: Equatable {
    case unknown, authorized, denied, restricted
    case unavailable(String)
}

/// Camera -> FaceLandmarker -> 68 points, aligned crop, noise -> Core ML components -> overlay.
/// All of it runs on the camera's queue (never the main thread); the UI gets copies on the main queue.
@MainActor
final class DemoModel: ObservableObject {
    @Published var overlay = OverlayState()
    @Published var status = "loading…"
    @Published var benchmarkText = ""
    @Published var benchmarking = false
    @Published var computeChoice: ComputeChoice = .all { didSet { reload() } }
    @Published var useFused = false { didSet { reload() } }
    @Published var iterations = 50
    @Published private(set) var fusedAvailable = false
    @Published private(set) var cameraAccess: CameraAccess = .unknown

    let camera = CameraController()
    private let worker: Worker
    private var cameraRunning = false
    /// The load in flight and the number of the latest choice: a newer choice cancels the older load, waits for
    /// it to stop (loads never overlap, so they never race on the compiled-model cache), and only the latest
    /// choice's result is shown and kept.
    private var loadTask: Task<Void, Never>?
    private var loadGeneration = 0

    init() {
        worker = Worker(queue: camera.queue)
        camera.onFrame = { [worker] buffer in worker.process(buffer) }
        worker.publish = { [weak self] state in Task { @MainActor in self?.overlay = state } }
        reload()
        startCameraIfAllowed()
    }

    /// Asks for the camera the first time (the system prompt shows NSCameraUsageDescription); when it was
    /// denied or is restricted, ContentView explains why it is needed and links to Settings. Called again
    /// when the app becomes active (the user may come back from Settings).
    func startCameraIfAllowed() {
        switch AVCaptureDevice.authorizationStatus(for: .video) {
        case .authorized:
            startCamera()
        case .notDetermined:
            Task {
                let granted = await AVCaptureDevice.requestAccess(for: .video)
                if granted { self.startCamera() } else { self.cameraAccess = .denied }
            }
        case .denied:
            cameraAccess = .denied
        case .restricted:
            cameraAccess = .restricted
        @unknown default:
            cameraAccess = .denied
        }
    }

    private func startCamera() {
        guard !cameraRunning else { return }
        do {
            try camera.configure()
            camera.start()
            cameraRunning = true
            cameraAccess = .authorized
        } catch {
            cameraAccess = .unavailable(error.localizedDescription)
        }
    }

    func reload() {
        let units = computeChoice.units, fused = useFused, worker = worker
        loadGeneration += 1
        let generation = loadGeneration
        let previous = loadTask
        previous?.cancel()
        status = "loading bundle…"
        loadTask = Task {
            _ = await previous?.value  // one load at a time: the cancelled one stops first
            guard !Task.isCancelled, generation == self.loadGeneration else { return }
            do {
                let (message, hasFused) = try await worker.load(units: units, fused: fused)
                guard generation == self.loadGeneration else { return }
                self.status = message
                self.fusedAvailable = hasFused
            } catch is CancellationError {
                // superseded by a newer choice: that load reports
            } catch {
                guard generation == self.loadGeneration else { return }
                self.status = "bundle not loaded: \(error.localizedDescription)"
            }
        }
    }

    func benchmark() {
        benchmarking = true
        let n = max(1, iterations)
        worker.queue.async { [worker] in
            let text = worker.benchmark(iterations: n)
            Task { @MainActor in
                self.benchmarkText = text
                self.benchmarking = false
            }
        }
    }
}

/// The state only the inference queue touches (read and written there, never from another thread).
final class Worker: @unchecked Sendable {
    let queue: DispatchQueue
    var publish: ((OverlayState) -> Void)?
    private var landmarker: FaceLandmarkerService?
    private var manifest: BundleManifest?
    private var pre: FacePreprocessor?
    private var noise: NoiseSource?
    private var runner: CoreMLRunner?
    private var busy = false

    init(queue: DispatchQueue) { self.queue = queue }

    /// Runs `body` on the inference queue and resumes the caller when it is done, without blocking a
    /// Swift-concurrency thread (no queue.sync from async code).
    private func onQueue<T>(_ body: @escaping () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            queue.async {
                do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
            }
        }
    }

    /// Finds the bundle (Documents/*.udc first, then the app's Bundles/*.udc), checks and verifies it, compiles
    /// and loads the models, then swaps them in on the queue (with the landmarker, made there once). Stops with
    /// CancellationError between steps when a newer load replaced it.
    func load(units: MLComputeUnits, fused: Bool) async throws -> (String, Bool) {
        let dir = try Self.findBundle()
        let m = try BundleManifest(directory: dir)
        try m.check(useFused: fused)
        let plan = try m.plan(useFused: fused)
        try m.verifyFiles(plan)
        let p = try FacePreprocessor(m.preprocessing, table: m.mediapipeTo68)
        let n = try m.noise.map { try NoiseSource($0) }  // nil for a DDAMFN bundle (image only)
        try Task.checkCancellation()
        let r = try await CoreMLRunner.load(manifest: m, plan: plan, units: units, pre: p, noise: n)
        try Task.checkCancellation()
        let landmarkerProblem: String? = try await onQueue {
            self.manifest = m; self.pre = p; self.noise = n; self.runner = r
            if self.landmarker != nil { return nil }
            do {
                self.landmarker = try FaceLandmarkerService()
                return nil
            } catch {
                return "face landmarker not available: \(error.localizedDescription)"
            }
        }
        var message = "\(dir.lastPathComponent): \(m.target) \(m.quant) (\(m.quantizationMode ?? "?")), crop \(m.preprocessing.cropSize), "
            + (m.diffusionSteps.map { "\(m.family) T=\($0), " } ?? "\(m.family), ") + "\(m.labels.count) labels, parity \(m.parityPassed.map(String.init) ?? "n/a")\n"
            + "run: \(plan.map(\.name).joined(separator: " → "))"
        if let problem = landmarkerProblem { message += "\n" + problem }
        return (message, m.fused != nil)
    }

    static func findBundle() throws -> URL {
        let fm = FileManager.default
        var roots: [URL] = []
        if let docs = fm.urls(for: .documentDirectory, in: .userDomainMask).first { roots.append(docs) }
        if let res = Bundle.main.resourceURL { roots.append(res.appendingPathComponent("Bundles")) }
        for root in roots {
            let items = (try? fm.contentsOfDirectory(at: root, includingPropertiesForKeys: nil)) ?? []
            if let found = items.filter({ $0.pathExtension == "udc" }).sorted(by: { $0.lastPathComponent < $1.lastPathComponent }).first {
                return found
            }
        }
        throw ManifestError("no bundle: copy NAME.udc into the app's Documents, or into UDCDemo/Resources/Bundles before building (README)")
    }

    /// One camera frame (on the queue).
    func process(_ sample: CMSampleBuffer) {
        guard !busy, let lm = landmarker, let pre = pre, let runner = runner, let m = manifest,
              let frame = CMSampleBufferGetImageBuffer(sample) else { return }
        var state = OverlayState()
        state.frameSize = CGSize(width: CVPixelBufferGetWidth(frame), height: CVPixelBufferGetHeight(frame))
        do {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let count = try lm.detect(frame, timestamp: CMSampleBufferGetPresentationTimeStamp(sample))
            let t1 = DispatchTime.now().uptimeNanoseconds
            state.landmarkerMs = Double(t1 - t0) / 1e6
            let ok = count > 0 && lm.mesh.withUnsafeBufferPointer { pre.process(mesh: $0.baseAddress!, meshCount: count, frame: frame) }
            if ok {
                state.preprocessMs = Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e6
                noise?.draw()
                let best = try runner.run()
                state.hasFace = true
                state.box = CGRect(x: CGFloat(pre.box[0]), y: CGFloat(pre.box[1]),
                                   width: CGFloat(pre.box[2] - pre.box[0]), height: CGFloat(pre.box[3] - pre.box[1]))
                state.points = (0..<pre.points).map { CGPoint(x: CGFloat(pre.points68[2 * $0]), y: CGFloat(pre.points68[2 * $0 + 1])) }
                state.label = m.labels[best]
                state.confidence = runner.probabilities[best]
                state.stages = Array(zip(runner.stageNames, runner.stageMillis))
            }
        } catch {
            state.label = "error: \(error.localizedDescription)"
        }
        publish?(state)
    }

    /// N runs of the models on what the arrays hold (the last face, or a blank crop): p50/p90 per stage.
    func benchmark(iterations n: Int) -> String {
        guard let runner = runner else { return "benchmark: no bundle loaded" }
        busy = true
        defer { busy = false }
        do {
            for _ in 0..<3 { try runner.run() }
            var perStage = [[Double]](repeating: [], count: runner.stageNames.count)
            var total: [Double] = []
            for _ in 0..<n {
                noise?.draw()
                let t0 = DispatchTime.now().uptimeNanoseconds
                try runner.run()
                total.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
                for s in perStage.indices { perStage[s].append(runner.stageMillis[s]) }
            }
            var lines = ["benchmark, \(n) runs after 3 warm-up:"]
            for (s, name) in runner.stageNames.enumerated() { lines.append("\(name.padding(toLength: 10, withPad: " ", startingAt: 0)) \(Stats.summary(perStage[s]))") }
            lines.append("total      \(Stats.summary(total))")
            return lines.joined(separator: "\n")
        } catch {
            return "benchmark failed: \(error.localizedDescription)"
        }
    }
}
