@file:Suppress("unused", "UNUSED_PARAMETER")
package android.widget
import android.view.View
open class TextView : View(null) { var text: CharSequence = "" }
class Button : TextView()
class EditText : TextView()
open class CompoundButton : TextView() {
    var isChecked = false
    fun interface OnCheckedChangeListener { fun onCheckedChanged(b: CompoundButton, isChecked: Boolean) }
    fun setOnCheckedChangeListener(l: OnCheckedChangeListener?) {}
}
class CheckBox : CompoundButton()
class LinearLayout : View(null)
