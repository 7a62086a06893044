#!/usr/bin/env bash
# MediaPipe's FaceLandmarker model bundle (face detector + 478-point mesh), the same file MediaPipe's own
# samples fetch; it is in no CocoaPod. Run once before `xcodegen generate`.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=UDCDemo/Resources/face_landmarker.task
url=https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task
mkdir -p "$(dirname "$dest")"
[ -s "$dest" ] || curl -fL -o "$dest" "$url"
echo "ok: $dest ($(wc -c < "$dest") bytes)"
