//! `index_metadata.pickle`: the HNSW segment's user-id ↔ label map.
//!
//! Chroma 1.x writes a protocol-3 dict with serde-pickle; 0.4–0.6 wrote a protocol-5
//! `PersistentData` instance (`STACK_GLOBAL`, `NEWOBJ`, `BUILD` with its `__dict__`). Both
//! are read by a small, total unpickler of the opcodes those writers use (FORMAT.md,
//! "Chroma persist directories"). It never executes anything: globals are names, objects
//! are their class name and state. Every allocation is bounded by the input (the stack and
//! the memo hold at most one value per opcode; shared values are reference-counted, so a
//! memo reference copies nothing).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// What the reader needs from the pickle.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdMap {
    /// `(user id, label)` of every live element, in the pickle's order.
    pub id_to_label: Vec<(String, u64)>,
    /// The legacy (≤ 0.6) location of the vector segment's high-water mark.
    pub max_seq_id: Option<u64>,
}

#[derive(Debug, Clone)]
enum Value {
    None,
    Bool,
    Int(i128),
    Float,
    Str(Rc<str>),
    Bytes,
    List(Rc<RefCell<Vec<Value>>>),
    Tuple,
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    Global,
    Object(Rc<RefCell<Option<Value>>>),
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
}

type R<T> = Result<T, String>;

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    fn le(&mut self, n: usize) -> R<u64> {
        let b = self.take(n)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }

    fn pop(&mut self) -> R<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(format!("stack underflow at byte {}", self.pos));
        }
        self.stack
            .pop()
            .ok_or_else(|| "stack underflow".to_string())
    }

    fn pop_mark(&mut self) -> R<Vec<Value>> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| format!("no MARK at byte {}", self.pos))?;
        Ok(self.stack.split_off(mark))
    }

    fn top(&self) -> R<&Value> {
        self.stack
            .last()
            .ok_or_else(|| format!("empty stack at byte {}", self.pos))
    }

    fn string(&mut self, len: u64) -> R<()> {
        let len = usize::try_from(len).map_err(|_| "string length overflows".to_string())?;
        let s = std::str::from_utf8(self.take(len)?)
            .map_err(|_| format!("string before byte {} is not UTF-8", self.pos))?;
        self.stack.push(Value::Str(s.into()));
        Ok(())
    }

    fn long(&mut self, len: u64) -> R<()> {
        if len > 16 {
            return Err(format!("integer of {len} bytes at byte {}", self.pos));
        }
        let b = self.take(len as usize)?;
        let mut v: i128 = 0;
        for (i, &x) in b.iter().enumerate() {
            v |= (x as i128) << (8 * i);
        }
        if len > 0 && len < 16 && b[len as usize - 1] & 0x80 != 0 {
            v -= 1i128 << (8 * len);
        }
        self.stack.push(Value::Int(v));
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Value>) -> R<()> {
        if !items.len().is_multiple_of(2) {
            return Err(format!("odd number of dict items at byte {}", self.pos));
        }
        let Value::Dict(d) = self.top()?.clone() else {
            return Err(format!("SETITEMS on a non-dict at byte {}", self.pos));
        };
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.borrow_mut().push((k, v));
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> R<()> {
        let Value::List(l) = self.top()?.clone() else {
            return Err(format!("APPENDS on a non-list at byte {}", self.pos));
        };
        l.borrow_mut().extend(items);
        Ok(())
    }

    // Long: one arm per opcode; splitting the dispatch would only scatter it.
    fn step(&mut self, op: u8) -> R<bool> {
        match op {
            0x80 => {
                self.u8()?; // PROTO
            }
            0x95 => {
                self.take(8)?; // FRAME
            }
            b'.' => return Ok(false),
            b'N' => self.stack.push(Value::None),
            0x88 => self.stack.push(Value::Bool),
            0x89 => self.stack.push(Value::Bool),
            b'J' => {
                let v = self.le(4)? as u32 as i32;
                self.stack.push(Value::Int(v as i128));
            }
            b'K' => {
                let v = self.le(1)?;
                self.stack.push(Value::Int(v as i128));
            }
            b'M' => {
                let v = self.le(2)?;
                self.stack.push(Value::Int(v as i128));
            }
            0x8a => {
                let n = self.le(1)?;
                self.long(n)?;
            }
            0x8b => {
                let n = self.le(4)?;
                self.long(n)?;
            }
            b'G' => {
                self.take(8)?;
                self.stack.push(Value::Float);
            }
            b'X' => {
                let n = self.le(4)?;
                self.string(n)?;
            }
            0x8c => {
                let n = self.le(1)?;
                self.string(n)?;
            }
            0x8d => {
                let n = self.le(8)?;
                self.string(n)?;
            }
            b'C' | b'B' | 0x8e => {
                let n = match op {
                    b'C' => self.le(1)?,
                    b'B' => self.le(4)?,
                    _ => self.le(8)?,
                };
                let n = usize::try_from(n).map_err(|_| "bytes length overflows".to_string())?;
                self.take(n)?;
                self.stack.push(Value::Bytes);
            }
            b'}' => self.stack.push(Value::Dict(Rc::default())),
            b']' => self.stack.push(Value::List(Rc::default())),
            b')' => self.stack.push(Value::Tuple),
            b'(' => self.marks.push(self.stack.len()),
            b'd' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::Dict(Rc::default()));
                self.set_items(items)?;
            }
            b'l' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::List(Rc::new(RefCell::new(items))));
            }
            b't' => {
                self.pop_mark()?;
                self.stack.push(Value::Tuple);
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                for _ in 0..n {
                    self.pop()?;
                }
                self.stack.push(Value::Tuple);
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.set_items(vec![k, v])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(items)?;
            }
            b'a' => {
                let v = self.pop()?;
                self.append(vec![v])?;
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.append(items)?;
            }
            0x94 => {
                let v = self.top()?.clone();
                let key = self.memo.len() as u64;
                self.memo.insert(key, v);
            }
            b'q' | b'r' => {
                let key = if op == b'q' { self.le(1)? } else { self.le(4)? };
                let v = self.top()?.clone();
                self.memo.insert(key, v);
            }
            b'h' | b'j' => {
                let key = if op == b'h' { self.le(1)? } else { self.le(4)? };
                let v = self
                    .memo
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| format!("memo {key} unset at byte {}", self.pos))?;
                self.stack.push(v);
            }
            0x93 => {
                self.pop()?;
                self.pop()?;
                self.stack.push(Value::Global);
            }
            b'c' => {
                for _ in 0..2 {
                    let rest = &self.bytes[self.pos..];
                    let nl = rest
                        .iter()
                        .position(|&b| b == b'\n')
                        .ok_or_else(|| format!("GLOBAL without newline at byte {}", self.pos))?;
                    self.take(nl + 1)?;
                }
                self.stack.push(Value::Global);
            }
            0x81 => {
                self.pop()?; // args
                self.pop()?; // class
                self.stack.push(Value::Object(Rc::default()));
            }
            b'b' => {
                let state = self.pop()?;
                let Value::Object(o) = self.top()?.clone() else {
                    return Err(format!("BUILD on a non-object at byte {}", self.pos));
                };
                *o.borrow_mut() = Some(state);
            }
            other => {
                return Err(format!(
                    "unsupported pickle opcode 0x{other:02x} at byte {}",
                    self.pos - 1
                ))
            }
        }
        Ok(true)
    }
}

fn run(bytes: &[u8]) -> R<Value> {
    let mut m = Machine {
        bytes,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    loop {
        let op = m.u8().map_err(|_| "no STOP opcode".to_string())?;
        if !m.step(op)? {
            break;
        }
    }
    if m.stack.len() != 1 {
        return Err(format!(
            "{} values left on the stack at STOP",
            m.stack.len()
        ));
    }
    m.pop()
}

fn int(v: &Value, what: &str) -> R<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).map_err(|_| format!("{what} {i} is out of range")),
        _ => Err(format!("{what} is not an integer")),
    }
}

fn lookup(dict: &[(Value, Value)], key: &str) -> Option<Value> {
    dict.iter().find_map(|(k, v)| match k {
        Value::Str(s) if &**s == key => Some(v.clone()),
        _ => None,
    })
}

/// Parse an `index_metadata.pickle` (1.x dict or legacy instance).
pub fn parse_id_map(bytes: &[u8]) -> Result<IdMap, String> {
    let top = run(bytes)?;
    let top = match top {
        Value::Object(o) => o
            .borrow()
            .clone()
            .ok_or_else(|| "the pickled object has no state".to_string())?,
        v => v,
    };
    let Value::Dict(fields) = top else {
        return Err("the pickle is not a dict or an object with a dict state".into());
    };
    let fields = fields.borrow();
    let Some(Value::Dict(map)) = lookup(&fields, "id_to_label") else {
        return Err("no id_to_label dict".into());
    };
    let mut id_to_label = Vec::with_capacity(map.borrow().len());
    for (k, v) in map.borrow().iter() {
        let Value::Str(id) = k else {
            return Err("an id_to_label key is not a string".into());
        };
        let label = int(v, &format!("the label of {id:?}"))?;
        id_to_label.push((id.to_string(), label));
    }
    let max_seq_id = match lookup(&fields, "max_seq_id") {
        None | Some(Value::None) => None,
        Some(v) => Some(int(&v, "max_seq_id")?),
    };
    Ok(IdMap {
        id_to_label,
        max_seq_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unicode(s: &str) -> Vec<u8> {
        let mut v = vec![b'X'];
        v.extend((s.len() as u32).to_le_bytes());
        v.extend(s.as_bytes());
        v
    }

    #[test]
    fn a_serde_pickle_style_dict_parses() {
        let mut p = vec![0x80, 3, b'}', b'('];
        p.extend(unicode("id_to_label"));
        p.extend([b'}', b'(']);
        p.extend(unicode("a"));
        p.extend([b'J', 1, 0, 0, 0]);
        p.extend(unicode("b"));
        p.extend([0x8a, 2, 0x00, 0x01]);
        p.push(b'u');
        p.extend(unicode("max_seq_id"));
        p.push(b'N');
        p.extend([b'u', b'.']);
        let m = parse_id_map(&p).unwrap();
        assert_eq!(
            m.id_to_label,
            vec![("a".to_string(), 1), ("b".to_string(), 256)]
        );
        assert_eq!(m.max_seq_id, None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"\x80\x03",
            b"u.",
            b"h\x05.",
            b"\x8a\xff.",
            b"X\xff\xff\xff\xff",
            b"}(K\x01u.",
            b"N.",
        ] {
            assert!(parse_id_map(bad).is_err(), "{bad:?}");
        }
    }
}
