#!/usr/bin/env bash
# Type-checks the app's plain-Kotlin core (no Android types) with kotlinc, against the real ExecuTorch Kotlin API
# sources and JSON-java's org.json, as was done for the README's claim. No Android SDK or Gradle is needed.
#
#   scripts/typecheck_core.sh EXECUTORCH_SRC JSON_JAVA_SRC
#     EXECUTORCH_SRC  a checkout of github.com/pytorch/executorch (the tag of executorchVersion, or main)
#     JSON_JAVA_SRC   a checkout of github.com/stleary/JSON-java
#   KOTLINC=/path/to/kotlinc to use a given compiler; otherwise `kotlinc` on PATH, else npm's kotlin-compiler
#   (npm install --prefix "$tmp" kotlin-compiler@2.4.20; needs Node and a JDK 17).
#
# fbjni, soloader and android.util.Log, which the ExecuTorch sources import, are replaced by the stubs in
# typecheck/stubs (signatures only). A second pass compiles every source of the app, MainActivity.kt,
# OverlayView.kt and BundleStore.kt included, against typecheck/android_stubs: Android, AndroidX, CameraX and
# MediaPipe Tasks signatures written by hand from their documentation (only what the app calls). That pass
# checks the app's own code (types, nullability, lambdas, labels) against those signatures, not against the
# real SDK: a wrong stub can hide a wrong call. Only a Gradle build with the SDK settles it.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
et="${1:?usage: $0 EXECUTORCH_SRC JSON_JAVA_SRC}"
json="${2:?usage: $0 EXECUTORCH_SRC JSON_JAVA_SRC}"
api="$et/extension/android/executorch_android/src/main/java/org/pytorch/executorch"
[ -f "$api/Module.kt" ] || { echo "no $api/Module.kt: not an ExecuTorch checkout (>= 1.0)" >&2; exit 2; }
[ -f "$json/src/main/java/org/json/JSONObject.java" ] || { echo "no JSON-java sources in $json" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
kotlinc="${KOTLINC:-$(command -v kotlinc || true)}"
if [ -z "$kotlinc" ]; then
    npm install --silent --no-audit --no-fund --prefix "$work/npm" kotlin-compiler@2.4.20 >/dev/null
    kotlinc="$work/npm/node_modules/kotlin-compiler/bin/kotlinc"
fi
src="$here/app/src/main/java/org/udc/demo"
core=(BundleManifest.kt FacePreprocessor.kt UdcRunner.kt RuntimeChecks.kt Stats.kt FrameResult.kt ManifestKeys.kt)
"$kotlinc" -nowarn -d "$work/out" "${core[@]/#/$src/}" "$api"/*.kt "$api/annotations" "$here/typecheck/stubs" \
    "$json/src/main/java"
echo "ok: ${core[*]} type-check against $api"
"$kotlinc" -nowarn -d "$work/out-all" "$src"/*.kt "$api"/*.kt "$api/annotations" "$here/typecheck/stubs" \
    "$here/typecheck/android_stubs" "$json/src/main/java"
echo "ok: every app source type-checks against typecheck/android_stubs (hand-written signatures, not the SDK)"
