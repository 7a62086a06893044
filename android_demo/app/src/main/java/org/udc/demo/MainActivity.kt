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
import androidx.core.view.ViewCompat
import androidx.core.view.WindowCompat
import androidx.core.view.WindowInsetsCompat
import androidx.core.view.updatePadding
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
    // the status lines, written by the worker (bundle, landmarker) and the main thread (camera)
    @Volatile private var loadMessage = ""
    @Volatile private var landmarkerMessage = ""
    @Volatile private var cameraMessage = ""
    private var frameError = "" // the last per-frame error shown, so the same one is not posted every frame
    private var analysis: ImageAnalysis? = null // main thread
    @Volatile private var destroyed = false

    private val askCamera = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) {
            startCamera()
        } else {
            cameraMessage = getString(R.string.no_camera_permission)
            showStatus()
        }
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        binding = ActivityMainBinding.inflate(layoutInflater)
        setContentView(binding.root)
        applyWindowInsets()
        binding.fused.setOnCheckedChangeListener { _, fused -> onWorker { loadBundle(fused) } }
        binding.benchmark.setOnClickListener {
            val n = binding.iterations.text.toString().toIntOrNull()?.coerceIn(1, 10_000) ?: 50
            binding.benchmark.isEnabled = false
            onWorker { benchmark(n) }
        }
        onWorker {
            createLandmarker()
            loadBundle(fused = false)
        }
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            askCamera.launch(Manifest.permission.CAMERA)
        }
    }

    /**
     * Android 15 (targetSdk 35) draws the app edge to edge: the status text goes below the status bar and
     * display cutout, the controls above the navigation bar; the preview and the overlay stay full screen.
     * The same on older versions (decor does not fit system windows).
     */
    private fun applyWindowInsets() {
        WindowCompat.setDecorFitsSystemWindows(window, false)
        val status = binding.status
        val controls = binding.controls
        val statusPad = intArrayOf(status.paddingLeft, status.paddingTop, status.paddingRight)
        val controlsPad = intArrayOf(controls.paddingLeft, controls.paddingRight, controls.paddingBottom)
        ViewCompat.setOnApplyWindowInsetsListener(binding.root) { _, insets ->
            val bars = insets.getInsets(WindowInsetsCompat.Type.systemBars() or WindowInsetsCompat.Type.displayCutout())
            binding.status.updatePadding(left = statusPad[0] + bars.left, top = statusPad[1] + bars.top, right = statusPad[2] + bars.right)
            binding.controls.updatePadding(left = controlsPad[0] + bars.left, right = controlsPad[1] + bars.right, bottom = controlsPad[2] + bars.bottom)
            binding.overlay.setSafeArea(bars.top, bars.bottom)
            insets
        }
    }

    /** Runs [task] on the worker unless the activity is going away (a late click must not hit a shut-down executor). */
    private fun onWorker(task: () -> Unit) {
        if (destroyed) return
        try {
            worker.execute(task)
        } catch (e: java.util.concurrent.RejectedExecutionException) {
            Log.w(TAG, "worker gone", e)
        }
    }

    /**
     * Frames stop first (no analyzer), then the worker, after whatever it is running, closes the programs and
     * the landmarker AND clears the fields: a frame or benchmark queued behind it sees no runner and returns
     * instead of calling a destroyed Module ("Module has been destroyed").
     */
    override fun onDestroy() {
        destroyed = true
        analysis?.clearAnalyzer()
        analysis = null
        worker.execute {
            val r = runner
            val l = landmarker
            runner = null; landmarker = null; manifest = null; pre = null; noise = null; result = null
            try { r?.close() } catch (e: Exception) { Log.w(TAG, "closing the runner", e) }
            try { l?.close() } catch (e: Exception) { Log.w(TAG, "closing the landmarker", e) }
        }
        worker.shutdown()
        super.onDestroy()
    }

    /** The status text: bundle line, landmarker problem and the last per-frame error (main thread). */
    private fun showStatus(extra: String = "") {
        val lines = listOf(loadMessage, landmarkerMessage, cameraMessage, extra).filter { it.isNotEmpty() }
        runOnUiThread { if (!destroyed) binding.status.text = lines.joinToString("\n") }
    }

    /** What to show for a failure; rethrows what no app should swallow (out of memory, a JVM fault). */
    private fun describe(e: Throwable): String {
        if (e is VirtualMachineError) throw e
        if (e is ManifestError) return e.message ?: "bad bundle"
        return "${e.javaClass.simpleName}: ${e.message ?: "(no message)"}"
    }

    // ------------------------------------------------------------------------------ set-up (worker thread)

    /**
     * A missing or corrupt face_landmarker.task (or a MediaPipe native library that does not load) leaves the
     * app running with the camera preview and a message, instead of killing it.
     */
    private fun createLandmarker() {
        landmarkerMessage = try {
            if (assets.list("")?.contains(FACE_LANDMARKER_TASK) != true) {
                throw IllegalStateException("$FACE_LANDMARKER_TASK is not in the APK's assets: build with network " +
                    "(the downloadFaceLandmarker task fetches it) or copy it to app/src/main/assets/ (README)")
            }
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
            ""
        } catch (e: Throwable) {
            Log.e(TAG, "landmarker", e)
            landmarker = null
            "face landmarker not available: ${describe(e)}"
        }
    }

    private fun loadBundle(fused: Boolean) {
        val old = runner
        runner = null
        result = null
        try { old?.close() } catch (e: Exception) { Log.w(TAG, "closing the previous runner", e) }
        try {
            val dir = BundleStore.find(this)
            val m = BundleManifest.load(dir)
            m.check(fused)
            val plan = m.plan(fused)
            // a .pte newer than this runtime is refused here, before any program is loaded
            val version = ExecutorchCompat.message(m.exporterExecutorch, BuildConfig.EXECUTORCH_VERSION)
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
                version.takeIf { it.isNotEmpty() }?.let { append("\n").append(it) }
            }
        } catch (e: Throwable) {
            Log.e(TAG, "bundle", e)
            manifest = null; pre = null; noise = null; runner = null; result = null
            loadMessage = "bundle not loaded: ${describe(e)}"
        }
        val hasFused = manifest?.fused != null
        showStatus()
        runOnUiThread { if (!destroyed) binding.fused.isEnabled = hasFused || binding.fused.isChecked }
    }

    // ------------------------------------------------------------------------------ camera

    private fun startCamera() {
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            val provider = try {
                future.get()
            } catch (e: Exception) {
                Log.e(TAG, "camera", e)
                cameraMessage = "camera not available: ${describe(e)}"
                showStatus()
                return@addListener
            }
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
            if (destroyed) return@addListener
            analysis.setAnalyzer(worker) { image -> analyze(image) }
            this.analysis = analysis
            try {
                provider.unbindAll()
                provider.bindToLifecycle(this, CameraSelector.DEFAULT_FRONT_CAMERA, preview, analysis)
            } catch (e: Exception) { // no front camera, camera in use, ...
                Log.e(TAG, "camera", e)
                cameraMessage = "camera not available: ${describe(e)}"
                showStatus()
            }
        }, ContextCompat.getMainExecutor(this))
    }

    // ------------------------------------------------------------------------------ per frame (worker thread)

    /**
     * One camera frame. Everything that can fail (the frame copy, MediaPipe, the preprocessing, ExecuTorch: a
     * missing operator, a shape error) runs inside one try: the error is shown on screen, the frame is always
     * closed, and the analyzer keeps receiving frames.
     */
    private fun analyze(image: ImageProxy) {
        try {
            val lmk = landmarker
            val p = pre
            val r = runner
            val out = result
            if (lmk == null || p == null || r == null || out == null) return
            analyzeFrame(image, lmk, p, r, out)
            if (frameError.isNotEmpty()) { frameError = ""; showStatus() }
        } catch (e: Throwable) {
            val msg = "frame failed: ${describe(e)}"
            if (msg != frameError) {
                Log.e(TAG, "frame", e)
                frameError = msg
                showStatus(msg)
            }
        } finally {
            image.close()
        }
    }

    private fun analyzeFrame(image: ImageProxy, lmk: FaceLandmarker, p: FacePreprocessor, r: UdcRunner, out: FrameResult) {
        val w = image.width
        val h = image.height
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
                out.label = manifest?.labels?.getOrNull(best) ?: "?"
                out.confidence = r.probabilities[best]
                r.stageMillis.copyInto(out.stageMs)
            }
        }
        binding.overlay.publish(out)
    }

    // ------------------------------------------------------------------------------ benchmark (worker thread)

    /** N runs of the model on what the buffers hold (the last face seen, or a blank crop): p50/p90 per stage. */
    private fun benchmark(n: Int) {
        val text = try {
            val r = runner
            if (r == null) "benchmark: no bundle loaded" else benchmarkRuns(r, n)
        } catch (e: Throwable) {
            Log.e(TAG, "benchmark", e)
            "benchmark failed: ${describe(e)}"
        }
        runOnUiThread {
            if (destroyed) return@runOnUiThread
            binding.status.text = listOf(loadMessage, landmarkerMessage, cameraMessage, text).filter { it.isNotEmpty() }.joinToString("\n")
            binding.benchmark.isEnabled = true
        }
    }

    private fun benchmarkRuns(r: UdcRunner, n: Int): String {
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
        return buildString {
            append("benchmark, $n runs after $WARMUP warm-up (${android.os.Build.MANUFACTURER} ${android.os.Build.MODEL}):\n")
            for (s in perStage.indices) append("%-10s %s\n".format(r.stageNames[s], Stats.summary(perStage[s])))
            append("%-10s %s".format("total", Stats.summary(total)))
        }
    }

    companion object {
        private const val TAG = "udc-demo"
        private const val FACE_LANDMARKER_TASK = "face_landmarker.task"
        private const val WARMUP = 3
        private const val MESH_POINTS = 478
    }
}
