// swift-tools-version:5.7
// Swift package of the qwen3-speech bindings. The generated sources are in Sources/Qwen3Speech
// (bindings/mobile/generate.sh); the native library comes as Qwen3SpeechFFI.xcframework, built
// as the README's "Mobile (Kotlin/Swift)" section shows (static libraries for iOS devices and
// simulators with the headers of include/).
import PackageDescription

let package = Package(
    name: "Qwen3Speech",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Qwen3Speech", targets: ["Qwen3Speech"]),
    ],
    targets: [
        .binaryTarget(name: "Qwen3SpeechFFI", path: "Qwen3SpeechFFI.xcframework"),
        .target(
            name: "Qwen3Speech",
            dependencies: ["Qwen3SpeechFFI"],
            path: "Sources/Qwen3Speech"
        ),
    ]
)
