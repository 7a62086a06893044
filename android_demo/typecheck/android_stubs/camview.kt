package androidx.camera.view
class PreviewView : android.view.View(null) { val surfaceProvider: androidx.camera.core.Preview.SurfaceProvider = androidx.camera.core.Preview.SurfaceProvider { } }
