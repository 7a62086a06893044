package org.udc.demo

import android.content.Context
import java.io.File

/**
 * Where the app looks for a bundle, first match wins:
 *  1. <external files>/bundles/NAME.udc  (adb push NAME.udc /sdcard/Android/data/org.udc.demo/files/bundles/)
 *  2. /data/local/tmp/udc/NAME.udc       (adb push NAME.udc /data/local/tmp/udc/)
 *  3. assets/bundle.udc in the APK        (copied to files/ once: ExecuTorch loads programs from a path)
 */
object BundleStore {
    private const val SUFFIX = ".udc"
    private const val ASSET_BUNDLE = "bundle.udc"

    fun roots(context: Context): List<File> =
        listOfNotNull(context.getExternalFilesDir(null)?.let { File(it, "bundles") }, File("/data/local/tmp/udc"))

    fun find(context: Context): File {
        for (root in roots(context)) {
            val found = root.listFiles()?.filter { it.isDirectory && it.name.endsWith(SUFFIX) }?.minByOrNull { it.name }
            if (found != null) return found
        }
        val entries = context.assets.list(ASSET_BUNDLE)
        if (!entries.isNullOrEmpty()) return copyAssetBundle(context, entries)
        throw ManifestError(
            "no bundle found: adb push NAME.udc ${roots(context).first()}/ (or /data/local/tmp/udc/), " +
                "or put it in app/src/main/assets/$ASSET_BUNDLE before building; see README.md"
        )
    }

    private fun copyAssetBundle(context: Context, entries: Array<String>): File {
        val dest = File(context.filesDir, ASSET_BUNDLE)
        val manifest = ManifestSyntax.MANIFEST_FILE
        val apkManifest = context.assets.open("$ASSET_BUNDLE/$manifest").use { it.readBytes() }
        val copied = File(dest, manifest)
        if (copied.isFile && copied.readBytes().contentEquals(apkManifest)) return dest
        dest.deleteRecursively()
        dest.mkdirs()
        for (name in entries) {
            context.assets.open("$ASSET_BUNDLE/$name").use { input -> File(dest, name).outputStream().use { input.copyTo(it) } }
        }
        return dest
    }
}
