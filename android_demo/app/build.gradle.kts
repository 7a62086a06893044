import java.net.URI

plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

// Versions this app was written against (nothing was resolved or compiled on the machine that wrote it:
// see README.md). The ExecuTorch runtime must be the same or a newer minor release than the `executorch`
// that exported the bundle (manifest.json "tools"."executorch"; ExecuTorch runtime/COMPATIBILITY.md):
// the app compares the two at start-up and says so on screen.
val executorchVersion = "1.5.1"
val mediapipeVersion = "0.10.21"
val cameraxVersion = "1.4.1"

android {
    namespace = "org.udc.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "org.udc.demo"
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        buildConfigField("String", "EXECUTORCH_VERSION", "\"$executorchVersion\"")
        buildConfigField("String", "MEDIAPIPE_VERSION", "\"$mediapipeVersion\"")
        ndk { abiFilters.addAll(listOf("arm64-v8a", "x86_64")) } // the ABIs executorch-android ships
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
        }
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
    buildFeatures {
        viewBinding = true
        buildConfig = true
    }
    // Models are copied out of the APK to files/ (Module.load needs a path): keep them uncompressed.
    androidResources { noCompress.addAll(listOf("pte", "task", "json")) }
}

dependencies {
    implementation("androidx.core:core-ktx:1.15.0")
    implementation("androidx.appcompat:appcompat:1.7.0")
    implementation("androidx.constraintlayout:constraintlayout:2.2.0")
    implementation("androidx.camera:camera-core:$cameraxVersion")
    implementation("androidx.camera:camera-camera2:$cameraxVersion")
    implementation("androidx.camera:camera-lifecycle:$cameraxVersion")
    implementation("androidx.camera:camera-view:$cameraxVersion")
    implementation("com.google.mediapipe:tasks-vision:$mediapipeVersion")
    // ExecuTorch Java/Kotlin API + JNI runtime with the XNNPACK backend (pulls fbjni and soloader via its POM).
    implementation("org.pytorch:executorch-android:$executorchVersion")
}

// MediaPipe's FaceLandmarker model bundle (face detector + 478-point mesh + blendshapes). Not in any Maven
// artifact: fetched once into assets/ before the build, as MediaPipe's own samples do.
val faceLandmarkerUrl =
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task"
val downloadFaceLandmarker by tasks.registering {
    val dest = layout.projectDirectory.file("src/main/assets/face_landmarker.task").asFile
    outputs.file(dest)
    doLast {
        if (!dest.exists()) {
            dest.parentFile.mkdirs()
            URI(faceLandmarkerUrl).toURL().openStream().use { input -> dest.outputStream().use { input.copyTo(it) } }
        }
    }
}
tasks.named("preBuild") { dependsOn(downloadFaceLandmarker) }
