// swift-tools-version:6.0
// stockdrop: an inventory engine for limited-stock drops, its load harness and its server.
// Layout follows DESIGN.md: Engine is imported by LoadGen and Server, never the reverse;
// libpq and hiredis are wrapped as thin system-library targets.
import PackageDescription

let package = Package(
    name: "stockdrop",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "stockdrop", targets: ["stockdrop"]),
        .library(name: "Engine", targets: ["Engine"]),
        .library(name: "LoadGen", targets: ["LoadGen"]),
        .library(name: "Server", targets: ["Server"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .target(
            name: "Engine",
            dependencies: [
                "CLibPQ",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        .target(
            name: "LoadGen",
            dependencies: [
                "Engine",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .target(name: "Server", dependencies: ["Engine", "CHiredis"]),
        .executableTarget(
            name: "stockdrop",
            dependencies: [
                "Engine", "LoadGen", "Server",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(name: "TestSupport", dependencies: ["Engine"], path: "Tests/TestSupport"),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "TestSupport"]),
        .testTarget(name: "LoadGenTests", dependencies: ["LoadGen", "TestSupport"]),
        .testTarget(name: "ServerTests", dependencies: ["Server"]),
    ],
    swiftLanguageModes: [.v6]
)
