import java.net.URI

plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

// Versions (sources in README.md, "Versions"; tests/test_app_contract.py checks they agree with the READMEs,
// the Podfile and pyproject.toml). Nothing was resolved or compiled on the machine that wrote this file.
// ExecuTorch runtime/COMPATIBILITY.md: a .pte made with executorch X.Y loads on a runtime of X.Y or the next
// minor release; an older runtime is not supported (no forward compatibility). udc pins executorch 1.5.1 for
// export, so the runtime is 1.5.1; the app compares it with the manifest's tools.executorch (ExecutorchCompat).
val executorchVersion = "1.5.1"
// tasks-vision 0.10.26 is the first release with 16 KB page-aligned JNI libraries (MediaPipe release notes,
// issues #6028, #5728); 0.10.29 also brings back x86/x86_64 (issue #6103). Never take "latest": Maven lists
// a stray 0.20230731 as newest, which is older and 4 KB aligned.
val mediapipeVersion = "0.10.29"
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
// artifact: fetched once into assets/ before the build, as MediaPipe's own samples do. The URL names the model
// version (float16/1), not the library version: changing tasks-vision does not change the file. Its sha256 is
// printed; put it in gradle.properties as udc.faceLandmarkerSha256 to have every later build check it.
val faceLandmarkerUrl =
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task"
val faceLandmarkerSha256: String? = (findProperty("udc.faceLandmarkerSha256") as String?)?.trim()?.takeIf { it.isNotEmpty() }
val downloadFaceLandmarker by tasks.registering {
    val dest = layout.projectDirectory.file("src/main/assets/face_landmarker.task").asFile
    outputs.file(dest)
    doLast {
        if (!dest.exists()) {
            dest.parentFile.mkdirs()
            val part = File(dest.path + ".part")
            try {
                URI(faceLandmarkerUrl).toURL().openStream().use { input -> part.outputStream().use { input.copyTo(it) } }
            } catch (e: Exception) {
                part.delete()
                throw GradleException("could not download $faceLandmarkerUrl ($e): copy face_landmarker.task to ${dest.parent} by hand")
            }
            part.renameTo(dest)
        }
        val digest = java.security.MessageDigest.getInstance("SHA-256").digest(dest.readBytes())
        val hex = digest.joinToString("") { "%02x".format(it) }
        logger.lifecycle("face_landmarker.task: ${dest.length()} bytes, sha256 $hex")
        if (faceLandmarkerSha256 != null && faceLandmarkerSha256 != hex) {
            throw GradleException("${dest.path} has sha256 $hex, gradle.properties says $faceLandmarkerSha256: delete it and build again")
        }
    }
}
tasks.named("preBuild") { dependsOn(downloadFaceLandmarker) }
