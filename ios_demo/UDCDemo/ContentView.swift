import AVFoundation
import SwiftUI
import UIKit  // UIApplication.openSettingsURLString

struct CameraPreview: UIViewRepresentable {
    let session: AVCaptureSession

    final class PreviewView: UIView {
        override class var layerClass: AnyClass { AVCaptureVideoPreviewLayer.self }
        var previewLayer: AVCaptureVideoPreviewLayer { layer as! AVCaptureVideoPreviewLayer }
    }

    func makeUIView(context: Context) -> PreviewView {
        let view = PreviewView()
        view.previewLayer.session = session
        view.previewLayer.videoGravity = .resizeAspectFill  // the overlay maps frames the same way
        return view
    }

    func updateUIView(_ uiView: PreviewView, context: Context) {}
}

/// Box, 68 points, label + probability and per-stage latency; frames are unmirrored, the preview is mirrored.
struct OverlayView: View {
    let state: OverlayState

    var body: some View {
        GeometryReader { geo in
            let fw = max(state.frameSize.width, 1), fh = max(state.frameSize.height, 1)
            let scale = max(geo.size.width / fw, geo.size.height / fh)
            let offX = (geo.size.width - fw * scale) / 2, offY = (geo.size.height - fh * scale) / 2
            let map = { (p: CGPoint) in CGPoint(x: geo.size.width - (p.x * scale + offX), y: p.y * scale + offY) }
            ZStack(alignment: .topLeading) {
                if state.hasFace {
                    let a = map(CGPoint(x: state.box.minX, y: state.box.minY)), b = map(CGPoint(x: state.box.maxX, y: state.box.maxY))
                    let rect = CGRect(x: min(a.x, b.x), y: a.y, width: abs(b.x - a.x), height: b.y - a.y)
                    Canvas { ctx, _ in
                        ctx.stroke(Path(rect), with: .color(.green), lineWidth: 2)
                        for p in state.points {
                            let q = map(p)
                            ctx.fill(Path(ellipseIn: CGRect(x: q.x - 2, y: q.y - 2, width: 4, height: 4)), with: .color(.cyan))
                        }
                    }
                    Text(String(format: "%@  %.0f%%", state.label, state.confidence * 100))
                        .font(.headline).foregroundColor(.white).shadow(radius: 2)
                        .position(x: rect.midX, y: max(rect.minY - 14, 14))
                }
                VStack(alignment: .leading, spacing: 2) {
                    Text(state.hasFace ? "" : "no face").font(.headline)
                    Text(String(format: "landmarks %.1f ms  preprocess %.1f ms", state.landmarkerMs, state.preprocessMs))
                    ForEach(Array(state.stages.enumerated()), id: \.offset) { _, stage in
                        Text(String(format: "%@ %.2f ms", stage.0, stage.1))
                    }
                    Text(String(format: "model total %.2f ms", state.stages.reduce(0) { $0 + $1.1 }))
                }
                .font(.caption.monospaced()).foregroundColor(.white).shadow(radius: 2)
                .padding(8)
                .position(x: geo.size.width / 2, y: geo.size.height * 0.72)
            }
        }
    }
}

/// Shown instead of a black preview when the camera may not be used: why the app needs it, and a link to
/// the app's page in Settings (denied) or what else to do (restricted by a profile, no camera).
struct CameraAccessView: View {
    let access: CameraAccess
    @Environment(\.openURL) private var openURL

    var body: some View {
        VStack(spacing: 12) {
            Image(systemName: "camera.fill").font(.largeTitle)
            Text("The front camera finds your face and reads its expression. Frames stay on this iPhone.")
                .multilineTextAlignment(.center)
            switch access {
            case .denied:
                Text("Camera access is off for this app.").font(.headline)
                Button("Open Settings") {
                    if let url = URL(string: UIApplication.openSettingsURLString) { openURL(url) }
                }
                .buttonStyle(.borderedProminent)
            case .restricted:
                Text("Camera access is restricted on this device (Screen Time or a device profile).").font(.headline)
            case .unavailable(let reason):
                Text("The camera cannot be used: \(reason)").font(.headline)
            case .unknown, .authorized:
                EmptyView()
            }
        }
        .foregroundColor(.white)
        .padding(20)
        .background(.black.opacity(0.75), in: RoundedRectangle(cornerRadius: 12))
        .padding()
    }
}

struct ContentView: View {
    @StateObject private var model = DemoModel()
    @Environment(\.scenePhase) private var scenePhase

    var body: some View {
        ZStack {
            CameraPreview(session: model.camera.session).ignoresSafeArea()
            OverlayView(state: model.overlay).ignoresSafeArea()
            if model.cameraAccess != .authorized && model.cameraAccess != .unknown {
                CameraAccessView(access: model.cameraAccess)
            }
            VStack {
                Text(model.status).font(.caption2.monospaced()).foregroundColor(.white)
                    .padding(6).background(.black.opacity(0.6))
                Spacer()
                if !model.benchmarkText.isEmpty {
                    Text(model.benchmarkText).font(.caption2.monospaced()).foregroundColor(.white)
                        .padding(6).background(.black.opacity(0.6))
                }
                VStack(spacing: 6) {
                    Picker("Compute units", selection: $model.computeChoice) {
                        ForEach(ComputeChoice.allCases) { Text($0.rawValue).tag($0) }
                    }
                    .pickerStyle(.segmented)
                    HStack {
                        Toggle("Fused", isOn: $model.useFused).disabled(!model.fusedAvailable).fixedSize()
                        Stepper("N = \(model.iterations)", value: $model.iterations, in: 10...1000, step: 10)
                        Button("Benchmark") { model.benchmark() }.disabled(model.benchmarking).buttonStyle(.borderedProminent)
                    }
                }
                .padding(8).background(.black.opacity(0.6))
            }
        }
        .onChange(of: scenePhase) { _, phase in
            if phase == .active { model.startCameraIfAllowed() }  // back from Settings
        }
    }
}
