//! Record ids and receipt/word filters of the receipt collections.
//!
//! Ids follow the seed (seed-system §3.1), receipt, line and word numbers zero-padded to
//! five digits:
//!
//! * word: `IMAGE#{image_id}#RECEIPT#{rid:05}#LINE#{lid:05}#WORD#{wid:05}`
//! * line (visual row, keyed by its leftmost line): `IMAGE#{image_id}#RECEIPT#{rid:05}#LINE#{lid:05}`
//!
//! and, for the metadata-only side collections (this crate's choice, deterministic from the
//! DynamoDB keys, mirroring them):
//!
//! * label row: the word id + `#LABEL#{LABEL}` (the label as in the DynamoDB sort key)
//! * section row: `IMAGE#{image_id}#RECEIPT#{rid:05}#SECTION#{SECTION_TYPE}`
//! * place row: `IMAGE#{image_id}#RECEIPT#{rid:05}#PLACE` (one per receipt, like its
//!   RECEIPT_PLACE item)
//!
//! Filters are the seed's: `{"$and":[{"image_id":{"$eq":X}},{"receipt_id":{"$eq":N}}]}`
//! with `receipt_id` an integer.

use strata_formats::{CmpOp, Filter, Predicate, Scalar};

/// Id of a word record.
pub fn word_id(image_id: &str, receipt_id: u32, line_id: u32, word_id: u32) -> String {
    format!("IMAGE#{image_id}#RECEIPT#{receipt_id:05}#LINE#{line_id:05}#WORD#{word_id:05}")
}

/// Id of a line (visual row) record, keyed by the row's primary (leftmost) line.
pub fn line_id(image_id: &str, receipt_id: u32, line_id: u32) -> String {
    format!("IMAGE#{image_id}#RECEIPT#{receipt_id:05}#LINE#{line_id:05}")
}

/// Id of a label row in the `labels` collection.
pub fn label_row_id(
    image_id: &str,
    receipt_id: u32,
    line_id: u32,
    word: u32,
    label: &str,
) -> String {
    format!(
        "{}#LABEL#{label}",
        word_id(image_id, receipt_id, line_id, word)
    )
}

/// Id of a section row in the `sections` collection.
pub fn section_row_id(image_id: &str, receipt_id: u32, section_type: &str) -> String {
    format!("IMAGE#{image_id}#RECEIPT#{receipt_id:05}#SECTION#{section_type}")
}

/// Id of a receipt's place row in the `places` collection.
pub fn place_row_id(image_id: &str, receipt_id: u32) -> String {
    format!("IMAGE#{image_id}#RECEIPT#{receipt_id:05}#PLACE")
}

/// The parts of a word or line id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedId {
    /// Segment 1.
    pub image_id: String,
    /// Segment 3.
    pub receipt_id: u32,
    /// Segment 5.
    pub line_id: u32,
    /// Segment 7, for a word id.
    pub word_id: Option<u32>,
}

/// Parse a line id: exactly 6 `#`-segments, no `WORD` (seed §3.1 delta-time rule).
pub fn parse_line_id(id: &str) -> Option<ParsedId> {
    let parts: Vec<&str> = id.split('#').collect();
    if parts.len() != 6 || parts.contains(&"WORD") {
        return None;
    }
    if parts[0] != "IMAGE" || parts[2] != "RECEIPT" || parts[4] != "LINE" {
        return None;
    }
    Some(ParsedId {
        image_id: parts[1].to_string(),
        receipt_id: parts[3].parse().ok()?,
        line_id: parts[5].parse().ok()?,
        word_id: None,
    })
}

/// Parse a word id: at least 8 `#`-segments, containing `WORD` (seed §3.1 delta-time rule).
pub fn parse_word_id(id: &str) -> Option<ParsedId> {
    let parts: Vec<&str> = id.split('#').collect();
    if parts.len() < 8 || !parts.contains(&"WORD") {
        return None;
    }
    Some(ParsedId {
        image_id: parts[1].to_string(),
        receipt_id: parts[3].parse().ok()?,
        line_id: parts[5].parse().ok()?,
        word_id: Some(parts[7].parse().ok()?),
    })
}

fn eq(key: &str, value: Scalar) -> Filter {
    Filter::Field {
        key: key.to_string(),
        pred: Predicate::Cmp(CmpOp::Eq, value),
    }
}

/// `{"$and":[{"image_id":{"$eq":X}},{"receipt_id":{"$eq":N}}]}`: every record of a receipt.
pub fn receipt_filter(image_id: &str, receipt_id: u32) -> Filter {
    Filter::And(vec![
        eq("image_id", Scalar::Str(image_id.to_string())),
        eq("receipt_id", Scalar::Int(i64::from(receipt_id))),
    ])
}

/// The records of one word (its vector in `words`, its rows in `labels`).
pub fn word_filter(image_id: &str, receipt_id: u32, line_id: u32, word_id: u32) -> Filter {
    Filter::And(vec![
        eq("image_id", Scalar::Str(image_id.to_string())),
        eq("receipt_id", Scalar::Int(i64::from(receipt_id))),
        eq("line_id", Scalar::Int(i64::from(line_id))),
        eq("word_id", Scalar::Int(i64::from(word_id))),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Seed §8.4 "zero-padded id construction" and §8.3 "line id and word id parsing rules".
    #[test]
    fn ids_are_zero_padded_and_parse_back() {
        let w = word_id("abc", 1, 23, 456);
        assert_eq!(w, "IMAGE#abc#RECEIPT#00001#LINE#00023#WORD#00456");
        assert_eq!(w.split('#').count(), 8);
        let l = line_id("abc", 7, 3);
        assert_eq!(l, "IMAGE#abc#RECEIPT#00007#LINE#00003");
        assert_eq!(
            parse_word_id(&w),
            Some(ParsedId {
                image_id: "abc".into(),
                receipt_id: 1,
                line_id: 23,
                word_id: Some(456)
            })
        );
        assert_eq!(parse_line_id(&l).unwrap().line_id, 3);
        assert_eq!(parse_line_id(&w), None, "a word id is not a line id");
        assert_eq!(parse_word_id(&l), None, "a line id is not a word id");
        assert_eq!(parse_line_id("IMAGE#a#RECEIPT#x#LINE#00001"), None);
        assert_eq!(
            label_row_id("abc", 1, 2, 3, "TOTAL"),
            "IMAGE#abc#RECEIPT#00001#LINE#00002#WORD#00003#LABEL#TOTAL"
        );
        assert_eq!(
            section_row_id("abc", 2, "ITEMS"),
            "IMAGE#abc#RECEIPT#00002#SECTION#ITEMS"
        );
        let p = place_row_id("abc", 3);
        assert_eq!(p, "IMAGE#abc#RECEIPT#00003#PLACE");
        assert_eq!(parse_line_id(&p), None, "a place row id is not a line id");
        assert_eq!(parse_word_id(&p), None, "a place row id is not a word id");
    }

    #[test]
    fn receipt_filter_is_the_seeds() {
        assert_eq!(
            receipt_filter("img", 42).to_json(),
            json!({"$and":[{"image_id":{"$eq":"img"}},{"receipt_id":{"$eq":42}}]})
        );
        let parsed =
            Filter::parse(r#"{"$and":[{"image_id":{"$eq":"img"}},{"receipt_id":{"$eq":42}}]}"#)
                .unwrap();
        assert_eq!(parsed, receipt_filter("img", 42));
    }
}
