import SwiftUI

@main
struct UDCDemoApp: App {
    var body: some Scene {
        WindowGroup { ContentView() }
    }
}
