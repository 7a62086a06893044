@file:Suppress("unused", "UNUSED_PARAMETER")
package org.udc.demo.databinding
class ActivityMainBinding(val root: android.view.View, val status: android.widget.TextView, val controls: android.widget.LinearLayout,
    val overlay: org.udc.demo.OverlayView, val preview: androidx.camera.view.PreviewView, val fused: android.widget.CheckBox,
    val benchmark: android.widget.Button, val iterations: android.widget.EditText) {
    companion object { @JvmStatic fun inflate(inflater: android.view.LayoutInflater): ActivityMainBinding = TODO() }
}
