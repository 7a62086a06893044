import CoreMedia
import CoreVideo
import Foundation  // Bundle: imported here, not relied on through MediaPipe's re-exports
import MediaPipeTasksVision

/// MediaPipe Tasks FaceLandmarker (478 points) in video mode: synchronous per frame. Made, used and released on
/// the inference queue only (Worker).
final class FaceLandmarkerService {
    static let meshPoints = 478  // 468 mesh vertices + 10 iris points
    private let landmarker: FaceLandmarker
    private var lastTimestamp = -1
    /// normalized (x, y) of the first face, interleaved; reused every frame
    private(set) var mesh = [Float](repeating: 0, count: FaceLandmarkerService.meshPoints * 2)

    init() throws {
        guard let path = Bundle.main.path(forResource: "face_landmarker", ofType: "task") else {
            throw ManifestError("face_landmarker.task is not in the app: run scripts/download_models.sh before building")
        }
        let options = FaceLandmarkerOptions()
        options.baseOptions.modelAssetPath = path
        options.runningMode = .video
        options.numFaces = 1
        options.minFaceDetectionConfidence = 0.5
        options.minFacePresenceConfidence = 0.5
        options.minTrackingConfidence = 0.5
        landmarker = try FaceLandmarker(options: options)
    }

    /// Number of mesh points found for the first face (0: no face); fills `mesh`.
    func detect(_ frame: CVPixelBuffer, timestamp: CMTime) throws -> Int {
        var ms = Int(CMTimeGetSeconds(timestamp) * 1000)
        if ms <= lastTimestamp { ms = lastTimestamp + 1 }  // video mode wants increasing timestamps
        lastTimestamp = ms
        let result = try landmarker.detect(videoFrame: try MPImage(pixelBuffer: frame), timestampInMilliseconds: ms)
        guard let face = result.faceLandmarks.first else { return 0 }
        let n = min(face.count, Self.meshPoints)
        for i in 0..<n {
            mesh[2 * i] = face[i].x
            mesh[2 * i + 1] = face[i].y
        }
        return n
    }
}
