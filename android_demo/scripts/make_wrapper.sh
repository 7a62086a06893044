#!/usr/bin/env bash
# Writes gradlew, gradlew.bat and gradle/wrapper/gradle-wrapper.jar (Gradle 8.11.1, the minimum for Android
# Gradle Plugin 8.9) into android_demo/, on a clean machine: only a JDK (17+) and curl + unzip are needed.
#
# Why not `gradle wrapper` inside android_demo/: that configures the project first, which applies AGP 8.9
# and fails on any Gradle older than 8.11.1. The wrapper task is therefore run in an empty directory (an
# empty settings file, nothing to configure), with a Gradle already on PATH if there is one (any version
# that runs on your JDK writes an 8.11.1 wrapper), else with Gradle 8.11.1 downloaded from
# services.gradle.org. gradle/wrapper/gradle-wrapper.properties of this project is kept as it is.
set -euo pipefail
version=8.11.1
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/empty"
touch "$work/empty/settings.gradle"
if command -v gradle >/dev/null 2>&1 && (cd "$work/empty" && gradle --quiet wrapper --gradle-version "$version" --distribution-type bin); then
    echo "wrapper written with $(gradle --version 2>/dev/null | grep -m1 '^Gradle' || echo 'the Gradle on PATH')"
else
    echo "no usable Gradle on PATH: downloading gradle-$version-bin.zip"
    curl -fL -o "$work/gradle.zip" "https://services.gradle.org/distributions/gradle-$version-bin.zip"
    unzip -q "$work/gradle.zip" -d "$work"
    (cd "$work/empty" && "$work/gradle-$version/bin/gradle" --quiet wrapper --gradle-version "$version" --distribution-type bin)
fi
cp "$work/empty/gradlew" "$work/empty/gradlew.bat" "$here/"
mkdir -p "$here/gradle/wrapper"
cp "$work/empty/gradle/wrapper/gradle-wrapper.jar" "$here/gradle/wrapper/"
chmod +x "$here/gradlew"
grep -q "gradle-$version-bin.zip" "$here/gradle/wrapper/gradle-wrapper.properties" \
    || { echo "gradle-wrapper.properties does not name gradle-$version: check it" >&2; exit 1; }
echo "ok: $here/gradlew (Gradle $version); next: cd android_demo && ./gradlew :app:assembleDebug"
