import Foundation
import SchedulerCore
import Testing

struct UUIDTextTests {
    @Test func writesAndReadsWhatFoundationDoes() {
        for _ in 0..<1000 {
            let uuid = UUID()
            #expect(uuid.lowercasedText == uuid.uuidString.lowercased())
            #expect(UUID(text: uuid.uuidString) == uuid)
            #expect(UUID(text: uuid.lowercasedText) == uuid)
            #expect(UUID(text: uuid.lowercasedText[...]) == uuid, "a substring reads too")
        }
        let edges = [
            "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
        ]
        for text in edges {
            #expect(UUID(text: text) == UUID(uuidString: text))
            #expect(UUID(text: text)?.lowercasedText == text.lowercased())
        }
    }

    @Test(arguments: [
        "", "0", "01a238d3-5ebd-8ad7-b89b-c2af4ab3584", "01a238d3-5ebd-8ad7-b89b-c2af4ab3584bb", "01a238d35ebd-8ad7-b89b-c2af4ab3584b0",
        "01a238d3-5ebd-8ad7-b89b-c2af4ab3584g", "{01a238d3-5ebd-8ad7-b89b-c2af4ab3584b}", " 01a238d3-5ebd-8ad7-b89b-c2af4ab3584b",
        "01a238d3-5ebd-8ad7-b89b-c2af4ab3584b ", "01a238d3_5ebd_8ad7_b89b_c2af4ab3584b", "01a238d3-5ebd-8ad7-b89b-c2af4ab3584\u{0}",
        "01a238d3-5ebd-8ad7-b89b-c2af4ab3584\u{FF10}", "01a238d3-5ebd-8ad7-b89b-c2af4ab358\u{0661}\u{0662}",
        "01a238d3-5ebd-8ad7-b89b-c2af4ab3584-",
        "----------------------------------- ", String(repeating: "a", count: 100_000),
    ])
    func refusesWhatIsNotAUUID(_ text: String) {
        #expect(UUID(text: text) == nil)
        #expect(UUID(uuidString: text) == nil, "Foundation refuses it too")
    }
}
