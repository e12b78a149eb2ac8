import Foundation

/// Output for people and for scripts: tables, and progress that redraws in place on a
/// terminal and prints plain lines when piped.
enum Terminal {
    static var isInteractive: Bool { isatty(STDOUT_FILENO) == 1 }

    /// Left-aligned columns under a header.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }

    static func truncate(_ text: String, _ length: Int) -> String {
        text.count <= length ? text : String(text.prefix(length - 1)) + "…"
    }
}

/// `[#######.............] 35/100` redrawn on a terminal; `moved 10/100` lines otherwise
/// (every tenth of the way and at the end).
final class Progress: @unchecked Sendable {
    private let total: Int
    private let verb: String
    private let interactive = Terminal.isInteractive
    private let lock = NSLock()
    private var lastLine = -1

    init(total: Int, verb: String) {
        self.total = total
        self.verb = verb
    }

    func update(_ done: Int) {
        lock.lock()
        defer { lock.unlock() }
        if interactive {
            let width = 30
            let filled = total == 0 ? width : min(width, done * width / max(total, 1))
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            FileHandle.standardOutput.write(Data("\r[\(bar)] \(done)/\(total) \(verb)".utf8))
        } else {
            let step = max(1, total / 10)
            if done == total || done / step != lastLine {
                lastLine = done / step
                print("\(verb) \(done)/\(total)")
            }
        }
    }

    func finish() {
        if interactive { FileHandle.standardOutput.write(Data("\n".utf8)) }
    }
}
