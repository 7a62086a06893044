package org.udc.demo

import android.Manifest
import android.content.pm.PackageManager
import android.graphics.Bitmap
import android.os.Bundle
import android.os.SystemClock
import android.util.Log
import android.util.Size
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.core.resolutionselector.ResolutionSelector
import androidx.camera.core.resolutionselector.ResolutionStrategy
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.core.content.ContextCompat
import com.google.mediapipe.framework.image.BitmapImageBuilder
import com.google.mediapipe.tasks.core.BaseOptions
import com.google.mediapipe.tasks.core.Delegate
import com.google.mediapipe.tasks.vision.core.RunningMode
import com.google.mediapipe.tasks.vision.facelandmarker.FaceLandmarker
import java.nio.ByteBuffer
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import org.udc.demo.databinding.ActivityMainBinding

/**
 * Front camera -> MediaPipe FaceLandmarker (478 points) -> the bundle's 68 points, aligned crop and noise ->
 * the .pte components (ExecuTorch) -> expression + probability + per-stage latency over the preview.
 * Camera analysis, landmarking and inference all run on [worker], one thread, never the UI thread.
 */
class MainActivity : AppCompatActivity() {
    private lateinit var binding: ActivityMainBinding
    private val worker: ExecutorService = Executors.newSingleThreadExecutor { r -> Thread(r, "udc-inference") }

    // owned by the worker thread
    private var manifest: BundleManifest? = null
    private var landmarker: FaceLandmarker? = null
    private var pre: FacePreprocessor? = null
    private var noise: NoiseSource? = null
    private var runner: UdcRunner? = null
    private var result: FrameResult? = null
    private val mesh = FloatArray(MESH_POINTS * 2) // MediaPipe FaceLandmarker: 478 points (468 + 10 iris)
    private var packed: ByteBuffer? = null
    private var bitmap: Bitmap? = null
    private var lastTimestamp = 0L
    private var loadMessage = ""

    private val askCamera = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) startCamera() else binding.status.text = getString(R.string.no_camera_permission)
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        binding = ActivityMainBinding.inflate(layoutInflater)
        setContentView(binding.root)
        binding.fused.setOnCheckedChangeListener { _, fused -> worker.execute { loadBundle(fused) } }
        binding.benchmark.setOnClickListener {
            val n = binding.iterations.text.toString().toIntOrNull()?.coerceIn(1, 10_000) ?: 50
            binding.benchmark.isEnabled = false
            worker.execute { benchmark(n) }
        }
        worker.execute {
            createLandmarker()
            loadBundle(fused = false)
        }
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            askCamera.launch(Manifest.permission.CAMERA)
        }
    }

    override fun onDestroy() {
        super.onDestroy()
        worker.execute {
            runner?.close()
            landmarker?.close()
        }
        worker.shutdown()
    }

    // ------------------------------------------------------------------------------ set-up (worker thread)

    private fun createLandmarker() {
        val base = BaseOptions.builder().setModelAssetPath(FACE_LANDMARKER_TASK).setDelegate(Delegate.CPU).build()
        val options = FaceLandmarker.FaceLandmarkerOptions.builder()
            .setBaseOptions(base)
            .setRunningMode(RunningMode.VIDEO) // synchronous per frame, on this thread
            .setNumFaces(1)
            .setMinFaceDetectionConfidence(0.5f)
            .setMinFacePresenceConfidence(0.5f)
            .setMinTrackingConfidence(0.5f)
            .build()
        landmarker = FaceLandmarker.createFromOptions(this, options)
    }

    private fun loadBundle(fused: Boolean) {
        runner?.close()
        runner = null
        try {
            val dir = BundleStore.find(this)
            val m = BundleManifest.load(dir)
            m.check(fused)
            val plan = m.plan(fused)
            m.verifyFiles(plan)
            val p = FacePreprocessor(m.preprocessing, m.mediapipeTo68)
            val n = m.noise?.let { NoiseSource(it) } // null for a DDAMFN bundle (image only)
            val threads = Runtime.getRuntime().availableProcessors().coerceAtMost(4)
            val r = UdcRunner(m, plan, p, n, threads)
            manifest = m; pre = p; noise = n; runner = r
            result = FrameResult(p.points, plan.size).also { it.stageNames = r.stageNames }
            loadMessage = buildString {
                append("${dir.name}: ${m.target}/${m.backend} ${m.quant}, crop ${m.preprocessing.cropSize}, ")
                append(if (m.diffusionSteps != null) "${m.family} T=${m.diffusionSteps}, " else "${m.family}, ")
                append("${m.labels.size} labels, parity ${m.parityPassed}\n")
                append("run: ${plan.joinToString(" -> ") { it.name }}")
                append(versionWarning(m.exporterExecutorch))
            }
        } catch (e: Exception) {
            Log.e(TAG, "bundle", e)
            loadMessage = "bundle not loaded: ${e.message}"
        }
        val msg = loadMessage
        runOnUiThread {
            binding.status.text = msg
            binding.fused.isEnabled = manifest?.fused != null
        }
    }

    /** PTE files load on the runtime of their release or the next ones, never older (ExecuTorch COMPATIBILITY.md). */
    private fun versionWarning(exporter: String?): String {
        if (exporter == null) return ""
        fun minor(v: String) = v.split('.').take(2).map { it.takeWhile(Char::isDigit).toIntOrNull() ?: 0 }
        val (em, en) = minor(exporter).let { it.getOrElse(0) { 0 } to it.getOrElse(1) { 0 } }
        val (rm, rn) = minor(BuildConfig.EXECUTORCH_VERSION).let { it.getOrElse(0) { 0 } to it.getOrElse(1) { 0 } }
        return if (rm < em || (rm == em && rn < en)) {
            "\nWARNING: exported with executorch $exporter, runtime is ${BuildConfig.EXECUTORCH_VERSION} (older): may not load"
        } else {
            ""
        }
    }

    // ------------------------------------------------------------------------------ camera

    private fun startCamera() {
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            val provider = future.get()
            val preview = Preview.Builder().build().also { it.setSurfaceProvider(binding.preview.surfaceProvider) }
            val analysis = ImageAnalysis.Builder()
                .setResolutionSelector(
                    ResolutionSelector.Builder()
                        .setResolutionStrategy(ResolutionStrategy(Size(640, 480), ResolutionStrategy.FALLBACK_RULE_CLOSEST_HIGHER_THEN_LOWER))
                        .build()
                )
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .setOutputImageRotationEnabled(true) // upright frames: rotationDegrees is 0
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .build()
            analysis.setAnalyzer(worker) { image -> analyze(image) }
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_FRONT_CAMERA, preview, analysis)
        }, ContextCompat.getMainExecutor(this))
    }

    // ------------------------------------------------------------------------------ per frame (worker thread)

    private fun analyze(image: ImageProxy) {
        val w = image.width
        val h = image.height
        val lmk = landmarker
        val p = pre
        val r = runner
        val out = result
        if (lmk == null || p == null || r == null || out == null) { image.close(); return }
        // the frame into reused memory: packed RGBA rows (the plane may pad its rows) and a Bitmap for MediaPipe
        val buf = packed?.takeIf { it.capacity() == w * h * 4 } ?: ByteBuffer.allocateDirect(w * h * 4).also { packed = it }
        val bmp = bitmap?.takeIf { it.width == w && it.height == h }
            ?: Bitmap.createBitmap(w, h, Bitmap.Config.ARGB_8888).also { bitmap = it }
        val plane = image.planes[0]
        val src = plane.buffer
        val rowStride = plane.rowStride
        buf.clear()
        for (row in 0 until h) {
            src.limit(row * rowStride + w * 4)
            src.position(row * rowStride)
            buf.put(src)
        }
        image.close()
        buf.rewind()
        bmp.copyPixelsFromBuffer(buf)
        buf.rewind()

        var ts = SystemClock.uptimeMillis()
        if (ts <= lastTimestamp) ts = lastTimestamp + 1 // VIDEO mode wants increasing timestamps
        lastTimestamp = ts
        val t0 = System.nanoTime()
        val faces = lmk.detectForVideo(BitmapImageBuilder(bmp).build(), ts).faceLandmarks()
        val t1 = System.nanoTime()
        out.frameWidth = w
        out.frameHeight = h
        out.landmarkerMs = (t1 - t0) / 1e6
        out.hasFace = false
        if (faces.isNotEmpty()) {
            val face = faces[0]
            val count = minOf(face.size, mesh.size / 2)
            for (i in 0 until count) { mesh[2 * i] = face[i].x(); mesh[2 * i + 1] = face[i].y() }
            if (p.process(mesh, count, buf, w, h)) {
                val t2 = System.nanoTime()
                out.preprocessMs = (t2 - t1) / 1e6
                noise?.draw()
                val best = r.run()
                out.hasFace = true
                p.box.copyInto(out.box)
                p.points68.copyInto(out.points68)
                out.label = manifest?.labels?.get(best) ?: "?"
                out.confidence = r.probabilities[best]
                r.stageMillis.copyInto(out.stageMs)
            }
        }
        binding.overlay.publish(out)
    }

    // ------------------------------------------------------------------------------ benchmark (worker thread)

    /** N runs of the model on what the buffers hold (the last face seen, or a blank crop): p50/p90 per stage. */
    private fun benchmark(n: Int) {
        val r = runner
        val text = if (r == null) {
            "benchmark: no bundle loaded"
        } else {
            repeat(WARMUP) { r.run() }
            val perStage = Array(r.stageNames.size) { DoubleArray(n) }
            val total = DoubleArray(n)
            for (i in 0 until n) {
                noise?.draw()
                val t0 = System.nanoTime()
                r.run()
                total[i] = (System.nanoTime() - t0) / 1e6
                for (s in perStage.indices) perStage[s][i] = r.stageMillis[s]
            }
            buildString {
                append("benchmark, $n runs after $WARMUP warm-up (${android.os.Build.MANUFACTURER} ${android.os.Build.MODEL}):\n")
                for (s in perStage.indices) append("%-10s %s\n".format(r.stageNames[s], Stats.summary(perStage[s])))
                append("%-10s %s".format("total", Stats.summary(total)))
            }
        }
        runOnUiThread {
            binding.status.text = "$loadMessage\n$text"
            binding.benchmark.isEnabled = true
        }
    }

    companion object {
        private const val TAG = "udc-demo"
        private const val FACE_LANDMARKER_TASK = "face_landmarker.task"
        private const val WARMUP = 3
        private const val MESH_POINTS = 478
    }
}
