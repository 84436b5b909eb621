//! Records for the embedding producer: word and visual-row metadata, documents and ids as
//! the seed writes them at embed time (seed-system §3.1–§3.3, §3.7), as [`Record`]s.
//!
//! Label metadata uses the same rules as the stream's recomputation ([`crate::derive`]), so
//! a freshly embedded record and a recomputed one agree key for key; optional keys are
//! omitted when they have no value. Merchant names are title-cased like the seed's
//! `strip().title()`. Coordinates are normalized 0–1 with y = 0 at the bottom.

use std::collections::BTreeMap;

use strata_formats::{MetaValue, Metadata, Record};

use crate::derive::{self, LabelView, SectionView};
use crate::ids;
use crate::normalize;

/// The `source` key of every embedded record.
pub const SOURCE: &str = "openai_embedding_batch";

/// The neighbour placeholder at the edge of a line or receipt.
pub const EDGE: &str = "<EDGE>";

/// An axis-aligned box, normalized coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    /// Left.
    pub x: f64,
    /// Bottom (y grows upwards).
    pub y: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
}

/// A point, normalized coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// x.
    pub x: f64,
    /// y.
    pub y: f64,
}

/// What OCR post-processing extracted from a word (`extracted_data`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractedData {
    /// `phone`, `address`, `url`, ... (compared case-insensitively).
    pub kind: String,
    /// The extracted value (the word text is used when absent).
    pub value: Option<String>,
}

/// A receipt word to embed.
#[derive(Debug, Clone, PartialEq)]
pub struct WordInput {
    /// The image.
    pub image_id: String,
    /// The receipt.
    pub receipt_id: u32,
    /// The line.
    pub line_id: u32,
    /// The word.
    pub word_id: u32,
    /// The OCR text.
    pub text: String,
    /// The four corners (any order).
    pub corners: [Point; 4],
    /// The bounding box.
    pub bounding_box: BoundingBox,
    /// OCR confidence.
    pub confidence: f64,
    /// Extracted data, if any.
    pub extracted_data: Option<ExtractedData>,
}

/// A receipt line to group into visual rows and embed.
#[derive(Debug, Clone, PartialEq)]
pub struct LineInput {
    /// The image.
    pub image_id: String,
    /// The receipt.
    pub receipt_id: u32,
    /// The line.
    pub line_id: u32,
    /// The OCR text.
    pub text: String,
    /// The bounding box.
    pub bounding_box: BoundingBox,
    /// OCR confidence.
    pub confidence: f64,
}

/// What a word's metadata needs besides the word.
#[derive(Debug, Clone, Copy, Default)]
pub struct WordContext<'a> {
    /// The nearest word to the left (`<EDGE>` when `None`).
    pub left: Option<&'a str>,
    /// The nearest word to the right (`<EDGE>` when `None`).
    pub right: Option<&'a str>,
    /// The receipt's merchant name (raw; title-cased here).
    pub merchant_name: Option<&'a str>,
    /// All labels of this word.
    pub labels: &'a [LabelView],
}

/// What a row's metadata needs besides its lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct RowContext<'a> {
    /// The words of the row's lines (for anchors).
    pub words: &'a [WordInput],
    /// The receipt's merchant name (raw).
    pub merchant_name: Option<&'a str>,
    /// All sections of the receipt.
    pub sections: &'a [SectionView],
    /// All labels of the receipt (those on the row's lines are used).
    pub labels: &'a [LabelView],
}

fn put(meta: &mut Metadata, key: &str, v: impl Into<Option<MetaValue>>) {
    if let Some(v) = v.into() {
        meta.insert(key.to_string(), v);
    }
}

fn int(v: u32) -> MetaValue {
    MetaValue::Int(i64::from(v))
}

enum Anchor {
    Phone,
    Address,
    Url,
}

fn anchor_of(word: &WordInput) -> Option<(Anchor, &str)> {
    let ed = word.extracted_data.as_ref()?;
    let kind = match ed.kind.trim().to_ascii_lowercase().as_str() {
        "phone" | "phone_number" => Anchor::Phone,
        "address" => Anchor::Address,
        "url" | "website" => Anchor::Url,
        _ => return None,
    };
    Some((kind, ed.value.as_deref().unwrap_or(&word.text)))
}

/// A word's metadata (seed §3.3).
pub fn word_metadata(word: &WordInput, cx: &WordContext<'_>) -> Metadata {
    let mut m = Metadata::new();
    m.insert("image_id".into(), MetaValue::Str(word.image_id.clone()));
    m.insert("receipt_id".into(), int(word.receipt_id));
    m.insert("line_id".into(), int(word.line_id));
    m.insert("word_id".into(), int(word.word_id));
    m.insert("source".into(), MetaValue::Str(SOURCE.into()));
    m.insert("text".into(), MetaValue::Str(word.text.clone()));
    let cx_ = word.corners.iter().map(|p| p.x).sum::<f64>() / 4.0;
    let cy = word.corners.iter().map(|p| p.y).sum::<f64>() / 4.0;
    m.insert("x".into(), MetaValue::Float(cx_));
    m.insert("y".into(), MetaValue::Float(cy));
    m.insert("width".into(), MetaValue::Float(word.bounding_box.width));
    m.insert("height".into(), MetaValue::Float(word.bounding_box.height));
    m.insert("confidence".into(), MetaValue::Float(word.confidence));
    m.insert(
        "left".into(),
        MetaValue::Str(cx.left.unwrap_or(EDGE).into()),
    );
    m.insert(
        "right".into(),
        MetaValue::Str(cx.right.unwrap_or(EDGE).into()),
    );
    m.insert(
        "merchant_name".into(),
        MetaValue::Str(normalize::merchant_name(cx.merchant_name).unwrap_or_default()),
    );
    for (key, value) in derive::word_label_values(cx.labels) {
        put(&mut m, key, value);
    }
    match anchor_of(word) {
        Some((Anchor::Phone, v)) => put(
            &mut m,
            "normalized_phone_10",
            normalize::phone(v).map(MetaValue::Str),
        ),
        Some((Anchor::Address, v)) => put(
            &mut m,
            "normalized_full_address",
            normalize::address(v).map(MetaValue::Str),
        ),
        Some((Anchor::Url, v)) => put(
            &mut m,
            "normalized_url",
            normalize::url(v).map(MetaValue::Str),
        ),
        None => {}
    }
    m
}

/// A word's record: id, embedding, document (the word text), metadata.
pub fn word_record(word: &WordInput, cx: &WordContext<'_>, embedding: Vec<f32>) -> Record {
    Record {
        id: ids::word_id(&word.image_id, word.receipt_id, word.line_id, word.word_id),
        embedding: Some(embedding),
        document: Some(word.text.clone()),
        metadata: word_metadata(word, cx),
    }
}

fn centroid_y(b: &BoundingBox) -> f64 {
    b.y + b.height / 2.0
}

fn within(v: f64, b: &BoundingBox) -> bool {
    v >= b.y && v <= b.y + b.height
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Group lines into visual rows (seed §3.1): two lines share a row when either's vertical
/// centroid lies within the other's vertical span, closed transitively. Each row lists
/// indices into `lines`, left to right; rows come top first (descending mean centroid y).
pub fn group_rows(lines: &[LineInput]) -> Vec<Vec<usize>> {
    let n = lines.len();
    let mut parent: Vec<usize> = (0..n).collect();
    for i in 0..n {
        for j in i + 1..n {
            let (a, b) = (&lines[i].bounding_box, &lines[j].bounding_box);
            if within(centroid_y(a), b) || within(centroid_y(b), a) {
                let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
                if ri != rj {
                    parent[rj] = ri;
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        let root = find(&mut parent, i);
        groups.entry(root).or_default().push(i);
    }
    let mut rows: Vec<Vec<usize>> = groups.into_values().collect();
    for row in &mut rows {
        row.sort_by(|&a, &b| {
            lines[a]
                .bounding_box
                .x
                .total_cmp(&lines[b].bounding_box.x)
                .then(lines[a].line_id.cmp(&lines[b].line_id))
        });
    }
    let mean_y = |row: &Vec<usize>| {
        row.iter()
            .map(|&i| centroid_y(&lines[i].bounding_box))
            .sum::<f64>()
            / row.len() as f64
    };
    rows.sort_by(|a, b| mean_y(b).total_cmp(&mean_y(a)));
    rows
}

/// A row's document: its lines' texts, left to right, joined by single spaces.
pub fn row_text(row: &[&LineInput]) -> String {
    row.iter()
        .map(|l| l.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A row's embedding input: the row above, the row, the row below, one per line
/// (`<EDGE>` past the first or last row). `rows` are row texts, top first.
pub fn row_embedding_input(rows: &[String], index: usize) -> String {
    let above = index
        .checked_sub(1)
        .and_then(|i| rows.get(i))
        .map_or(EDGE, String::as_str);
    let below = rows.get(index + 1).map_or(EDGE, String::as_str);
    let this = rows.get(index).map_or("", String::as_str);
    format!("{above}\n{this}\n{below}")
}

/// A row's metadata (seed §3.2). `row` holds the row's lines, left to right (as
/// [`group_rows`] orders them); the first is the primary line. `None` for an empty row.
pub fn row_metadata(row: &[&LineInput], cx: &RowContext<'_>) -> Option<Metadata> {
    let primary = row.first()?;
    let mut m = Metadata::new();
    m.insert("image_id".into(), MetaValue::Str(primary.image_id.clone()));
    m.insert("receipt_id".into(), int(primary.receipt_id));
    m.insert("line_id".into(), int(primary.line_id));
    m.insert("text".into(), MetaValue::Str(row_text(row)));
    let conf = row.iter().map(|l| l.confidence).sum::<f64>() / row.len() as f64;
    m.insert("confidence".into(), MetaValue::Float(conf));
    m.insert("avg_word_confidence".into(), MetaValue::Float(conf));
    let min_x = row
        .iter()
        .map(|l| l.bounding_box.x)
        .fold(f64::INFINITY, f64::min);
    let min_y = row
        .iter()
        .map(|l| l.bounding_box.y)
        .fold(f64::INFINITY, f64::min);
    let max_x = row
        .iter()
        .map(|l| l.bounding_box.x + l.bounding_box.width)
        .fold(f64::NEG_INFINITY, f64::max);
    let max_y = row
        .iter()
        .map(|l| l.bounding_box.y + l.bounding_box.height)
        .fold(f64::NEG_INFINITY, f64::max);
    m.insert("x".into(), MetaValue::Float(min_x));
    m.insert("y".into(), MetaValue::Float(min_y));
    m.insert("width".into(), MetaValue::Float(max_x - min_x));
    m.insert("height".into(), MetaValue::Float(max_y - min_y));
    m.insert("source".into(), MetaValue::Str(SOURCE.into()));
    let line_ids: Vec<u32> = row.iter().map(|l| l.line_id).collect();
    // Python's json.dumps form, e.g. "[3, 4]".
    let json = format!(
        "[{}]",
        line_ids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    m.insert("row_line_ids".into(), MetaValue::Str(json));
    put(
        &mut m,
        "merchant_name",
        normalize::merchant_name(cx.merchant_name).map(MetaValue::Str),
    );
    let sections = derive::line_sections(cx.sections);
    put(
        &mut m,
        "section_label",
        derive::row_section(&line_ids, &sections).map(MetaValue::Str),
    );
    let mut words: Vec<&WordInput> = cx
        .words
        .iter()
        .filter(|w| line_ids.contains(&w.line_id))
        .collect();
    words.sort_by_key(|w| (line_ids.iter().position(|&l| l == w.line_id), w.word_id));
    let mut phone = None;
    let mut url = None;
    let mut addresses = Vec::new();
    for w in &words {
        match anchor_of(w) {
            Some((Anchor::Phone, v)) if phone.is_none() => phone = normalize::phone(v),
            Some((Anchor::Url, v)) if url.is_none() => url = normalize::url(v),
            Some((Anchor::Address, v)) => addresses.push(v),
            _ => {}
        }
    }
    put(&mut m, "normalized_phone_10", phone.map(MetaValue::Str));
    put(
        &mut m,
        "normalized_full_address",
        normalize::row_address(addresses).map(MetaValue::Str),
    );
    put(&mut m, "normalized_url", url.map(MetaValue::Str));
    let on_row: Vec<&LabelView> = cx
        .labels
        .iter()
        .filter(|l| line_ids.contains(&l.line_id))
        .collect();
    for (key, value) in derive::row_label_values(&on_row) {
        put(&mut m, key, value);
    }
    Some(m)
}

/// A row's record: id of its primary line, embedding, document (the row text), metadata.
pub fn row_record(row: &[&LineInput], cx: &RowContext<'_>, embedding: Vec<f32>) -> Option<Record> {
    let metadata = row_metadata(row, cx)?;
    let primary = row.first()?;
    Some(Record {
        id: ids::line_id(&primary.image_id, primary.receipt_id, primary.line_id),
        embedding: Some(embedding),
        document: Some(row_text(row)),
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: u32, x: f64, y: f64, text: &str) -> LineInput {
        LineInput {
            image_id: "img".into(),
            receipt_id: 1,
            line_id: id,
            text: text.into(),
            bounding_box: BoundingBox {
                x,
                y,
                width: 0.2,
                height: 0.02,
            },
            confidence: 0.9,
        }
    }

    fn word(line_id: u32, word_id: u32, text: &str, kind: Option<&str>) -> WordInput {
        WordInput {
            image_id: "img".into(),
            receipt_id: 1,
            line_id,
            word_id,
            text: text.into(),
            corners: [
                Point { x: 0.1, y: 0.5 },
                Point { x: 0.3, y: 0.5 },
                Point { x: 0.1, y: 0.52 },
                Point { x: 0.3, y: 0.52 },
            ],
            bounding_box: BoundingBox {
                x: 0.1,
                y: 0.5,
                width: 0.2,
                height: 0.02,
            },
            confidence: 0.8,
            extracted_data: kind.map(|k| ExtractedData {
                kind: k.into(),
                value: None,
            }),
        }
    }

    fn label(line: u32, word: u32, name: &str, status: &str, ts: &str) -> LabelView {
        LabelView {
            line_id: line,
            word_id: word,
            label: name.into(),
            status: status.into(),
            timestamp_added: Some(ts.into()),
            proposed_by: Some(format!("by-{ts}")),
            confidence: Some(0.5),
        }
    }

    fn s(v: &str) -> MetaValue {
        MetaValue::Str(v.into())
    }

    // Seed §8.10 "Word metadata (coordinates are the centroid, title-cased merchant, label
    // enrichment for validated, pending, unvalidated and multiple labels, anchors)".
    #[test]
    fn word_metadata_as_at_embed_time() {
        let w = word(2, 3, "(805) 555-1234", Some("phone"));
        let labels = [
            label(2, 3, "PHONE_NUMBER", "VALID", "2025-01-02"),
            label(2, 3, "TAX", "INVALID", "2025-01-01"),
            label(2, 3, "OTHER", "PENDING", "2025-01-03"),
            label(2, 3, "DATE", "PENDING", "2025-01-04"),
        ];
        let m = word_metadata(
            &w,
            &WordContext {
                left: Some("Tel"),
                right: None,
                merchant_name: Some(" vons market "),
                labels: &labels,
            },
        );
        assert!((matches!(m["x"], MetaValue::Float(x) if (x - 0.2).abs() < 1e-12)));
        assert!((matches!(m["y"], MetaValue::Float(y) if (y - 0.51).abs() < 1e-12)));
        assert_eq!(m["merchant_name"], s("Vons Market"));
        assert_eq!(m["left"], s("Tel"));
        assert_eq!(m["right"], s(EDGE));
        assert_eq!(m["label_status"], s("validated"));
        assert_eq!(
            m["valid_labels_array"],
            MetaValue::StrList(vec!["PHONE_NUMBER".into()])
        );
        assert_eq!(
            m["invalid_labels_array"],
            MetaValue::StrList(vec!["TAX".into()])
        );
        assert_eq!(m["label_validated_at"], s("2025-01-02"));
        // latest PENDING is DATE (2025-01-04)
        assert_eq!(m["label_proposed_by"], s("by-2025-01-04"));
        assert_eq!(m["normalized_phone_10"], s("8055551234"));
        assert_eq!(m["source"], s(SOURCE));

        let bare = word_metadata(&word(1, 1, "x", None), &WordContext::default());
        assert_eq!(bare["label_status"], s("unvalidated"));
        assert_eq!(bare["merchant_name"], s(""));
        for k in [
            "valid_labels_array",
            "invalid_labels_array",
            "label_confidence",
            "label_validated_at",
        ] {
            assert!(!bare.contains_key(k), "{k}");
        }
        let pending = word_metadata(
            &word(1, 1, "x", None),
            &WordContext {
                labels: &[label(1, 1, "TOTAL", "PENDING", "t")],
                ..Default::default()
            },
        );
        assert_eq!(pending["label_status"], s("auto_suggested"));
        assert_eq!(pending["label_confidence"], MetaValue::Float(0.5));
        let rec = word_record(&w, &WordContext::default(), vec![0.0; 4]);
        assert_eq!(rec.id, "IMAGE#img#RECEIPT#00001#LINE#00002#WORD#00003");
        assert_eq!(rec.document.as_deref(), Some("(805) 555-1234"));
    }

    #[test]
    fn rows_group_and_order() {
        let lines = [
            line(1, 0.5, 0.80, "TOTAL"),
            line(2, 0.1, 0.805, "12.99"),
            line(3, 0.1, 0.50, "THANKS"),
            line(4, 0.1, 0.90, "VONS"),
        ];
        let rows = group_rows(&lines);
        let ids: Vec<Vec<u32>> = rows
            .iter()
            .map(|r| r.iter().map(|&i| lines[i].line_id).collect())
            .collect();
        assert_eq!(ids, vec![vec![4], vec![2, 1], vec![3]]);
        let texts: Vec<String> = rows
            .iter()
            .map(|r| row_text(&r.iter().map(|&i| &lines[i]).collect::<Vec<_>>()))
            .collect();
        assert_eq!(texts[1], "12.99 TOTAL");
        assert_eq!(row_embedding_input(&texts, 0), "<EDGE>\nVONS\n12.99 TOTAL");
        assert_eq!(
            row_embedding_input(&texts, 2),
            "12.99 TOTAL\nTHANKS\n<EDGE>"
        );
    }

    // Seed §8.10 "line metadata (avg confidence, section label, anchors)"; "records (id
    // formats, documents, row payload section stamping, sections map: highest confidence
    // wins, VALID beats PENDING, INVALID skipped, a tie gives no stamp)".
    #[test]
    fn row_metadata_as_at_embed_time() {
        let lines = [
            line(3, 0.1, 0.5, "123 Main Street"),
            line(4, 0.5, 0.5, "CA 91361"),
        ];
        let row: Vec<&LineInput> = lines.iter().collect();
        let words = [
            word(3, 1, "123 Main Street", Some("address")),
            word(4, 1, "CA 91361", Some("address")),
            word(4, 2, "vons.com", Some("url")),
        ];
        let sections = [
            SectionView {
                section_type: "ADDRESS".into(),
                line_ids: vec![3, 4],
                status: Some("PENDING".into()),
                confidence: Some(0.9),
            },
            SectionView {
                section_type: "STOREFRONT".into(),
                line_ids: vec![3, 4],
                status: Some("VALID".into()),
                confidence: Some(0.1),
            },
            SectionView {
                section_type: "FOOTER".into(),
                line_ids: vec![3, 4],
                status: Some("INVALID".into()),
                confidence: Some(1.0),
            },
        ];
        let labels = [
            label(3, 1, "ADDRESS_LINE", "VALID", "t"),
            label(9, 1, "TOTAL", "VALID", "t"),
        ];
        let cx = RowContext {
            words: &words,
            merchant_name: Some("VONS"),
            sections: &sections,
            labels: &labels,
        };
        let rec = row_record(&row, &cx, vec![0.0; 2]).unwrap();
        assert_eq!(rec.id, "IMAGE#img#RECEIPT#00001#LINE#00003");
        assert_eq!(rec.document.as_deref(), Some("123 Main Street CA 91361"));
        let m = &rec.metadata;
        assert_eq!(m["row_line_ids"], s("[3, 4]"));
        assert_eq!(m["section_label"], s("STOREFRONT"), "VALID beats PENDING");
        assert_eq!(m["merchant_name"], s("Vons"));
        assert_eq!(m["normalized_full_address"], s("123 MAIN ST CA 91361"));
        assert_eq!(m["normalized_url"], s("vons.com"));
        assert!(!m.contains_key("normalized_phone_10"));
        assert_eq!(
            m["valid_labels_array"],
            MetaValue::StrList(vec!["ADDRESS_LINE".into()])
        );
        assert_eq!(m["label_status"], s("validated"));
        assert!(matches!(m["width"], MetaValue::Float(w) if (w - 0.6).abs() < 1e-12));
        assert!(matches!(m["x"], MetaValue::Float(x) if (x - 0.1).abs() < 1e-12));

        // a tie between two sections gives no stamp
        let tie = [
            SectionView {
                section_type: "ITEMS".into(),
                line_ids: vec![3],
                status: None,
                confidence: None,
            },
            SectionView {
                section_type: "TOTAL_LINE".into(),
                line_ids: vec![4],
                status: None,
                confidence: None,
            },
        ];
        let m = row_metadata(
            &row,
            &RowContext {
                sections: &tie,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(!m.contains_key("section_label"));
        assert!(!m.contains_key("merchant_name"));
        assert_eq!(m["label_status"], s("unvalidated"));
        assert!(row_metadata(&[], &RowContext::default()).is_none());
    }
}
