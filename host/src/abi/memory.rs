//! Checked access to guest memory. Every pointer and length the guest hands over goes through
//! here: out of bounds is an error (which traps the guest), never a host crash.

use wasmtime::{Caller, Memory};

use crate::state::HostState;

pub type HostResult<T> = wasmtime::Result<T>;

/// The calling guest's memory and allocator, borrowed for one host call.
pub struct Guest<'a, 'c> {
    pub caller: &'a mut Caller<'c, HostState>,
    memory: Memory,
}

fn offset(value: i32) -> usize {
    // Wasm32 pointers and sizes are unsigned 32-bit values carried in i32.
    value as u32 as usize
}

impl<'a, 'c> Guest<'a, 'c> {
    pub fn new(caller: &'a mut Caller<'c, HostState>) -> HostResult<Self> {
        let Some(memory) = caller.data().guest.memory else {
            wasmtime::bail!("the module exports no `memory`");
        };
        Ok(Guest { caller, memory })
    }

    pub fn state(&mut self) -> &mut HostState {
        self.caller.data_mut()
    }

    /// The `len` bytes at `ptr`, checked.
    fn slice(&self, ptr: i32, len: i32) -> HostResult<&[u8]> {
        let (start, len) = (offset(ptr), offset(len));
        self.memory
            .data(&*self.caller)
            .get(start..)
            .and_then(|s| s.get(..len))
            .ok_or_else(|| wasmtime::format_err!("guest range {start}+{len} is out of bounds"))
    }

    /// Checks that `len` bytes at `ptr` are in bounds, without copying them.
    pub fn check(&self, ptr: i32, len: i32) -> HostResult<()> {
        self.slice(ptr, len).map(drop)
    }

    /// A copy of `len` bytes at `ptr`.
    pub fn read(&self, ptr: i32, len: i32) -> HostResult<Vec<u8>> {
        self.slice(ptr, len).map(<[u8]>::to_vec)
    }

    /// `len` bytes at `ptr` as text (lossy: the ABI does not promise UTF-8).
    pub fn read_string(&self, ptr: i32, len: i32) -> HostResult<String> {
        Ok(String::from_utf8_lossy(&self.read(ptr, len)?).into_owned())
    }

    /// At most the first `max` of the `len` bytes at `ptr` (all checked), as text: for what
    /// the host keeps, so that a guest cannot fill it with copies of its whole memory.
    pub fn read_string_prefix(&self, ptr: i32, len: i32, max: usize) -> HostResult<String> {
        let bytes = self.slice(ptr, len)?;
        let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned();
        if bytes.len() > max {
            text.push_str(&format!(" … (cut from {} bytes)", bytes.len()));
        }
        Ok(text)
    }

    pub fn read_u32(&self, ptr: i32) -> HostResult<u32> {
        let bytes = self.read(ptr, 4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub fn write(&mut self, ptr: i32, bytes: &[u8]) -> HostResult<()> {
        let start = offset(ptr);
        let len = bytes.len();
        self.memory
            .data_mut(&mut *self.caller)
            .get_mut(start..)
            .and_then(|s| s.get_mut(..len))
            .map(|dst| dst.copy_from_slice(bytes))
            .ok_or_else(|| wasmtime::format_err!("guest range {start}+{len} is out of bounds"))
    }

    pub fn write_u32(&mut self, ptr: i32, value: u32) -> HostResult<()> {
        self.write(ptr, &value.to_le_bytes())
    }

    pub fn write_u64(&mut self, ptr: i32, value: u64) -> HostResult<()> {
        self.write(ptr, &value.to_le_bytes())
    }

    /// Copies `bytes` into memory the guest allocates (`proxy_on_memory_allocate`), and writes
    /// its address and size at `ret_ptr` / `ret_len`; the guest owns the copy.
    pub fn return_bytes(&mut self, bytes: &[u8], ret_ptr: i32, ret_len: i32) -> HostResult<()> {
        let size =
            i32::try_from(bytes.len()).map_err(|_| wasmtime::format_err!("value too large"))?;
        let address = if bytes.is_empty() {
            0
        } else {
            let Some(allocate) = self.caller.data().guest.allocate.clone() else {
                wasmtime::bail!(
                    "the module exports no `proxy_on_memory_allocate` of type (i32) -> i32"
                );
            };
            let address = allocate.call(&mut *self.caller, size)?;
            if address == 0 {
                wasmtime::bail!("proxy_on_memory_allocate({size}) returned null");
            }
            self.write(address, bytes)?;
            address
        };
        self.write_u32(ret_ptr, address as u32)?;
        self.write_u32(ret_len, size as u32)
    }
}
