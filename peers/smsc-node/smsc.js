// An SMSC on node-smpp (npm "smpp") for sauti's SMPP adapter tests, on 127.0.0.1:$PORT.
//
// - bind_transceiver succeeds only for system_id "test" / password "secret";
// - submit_sm is answered with a hex message id; when registered_delivery & 1 a DELIVRD
//   receipt follows after RECEIPT_DELAY_MS (default 100) as deliver_sm with esm_class
//   0x04, receipted_message_id and message_state TLVs;
// - a submit_sm to destination "999" also makes the SMSC send a two-part concatenated
//   MO message ("Habari " + "yako?") from "254700000999" back to the sender;
// - every PDU is logged as one JSON line on stdout (data_coding, esm_class, UDH, the
//   short_message's bytes in hex), so tests can assert on what reached the wire;
// - a {"event":"listening"} line is printed once the port is open.
'use strict';
const smpp = require('smpp');

const PORT = parseInt(process.env.PORT || '2775', 10);
const RECEIPT_DELAY_MS = parseInt(process.env.RECEIPT_DELAY_MS || '100', 10);
let nextId = 1;

function log(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// node-smpp decodes short_message into text; keep each PDU's raw bytes so the log can
// show exactly what the client wrote.
const fromBuffer = smpp.PDU.prototype.fromBuffer;
smpp.PDU.prototype.fromBuffer = function (buffer) {
  Object.defineProperty(this, 'raw', { value: buffer, enumerable: false });
  return fromBuffer.call(this, buffer);
};

// submit_sm body layout (SMPP 3.4 4.4.1) up to short_message: the raw validity_period
// string and short_message bytes, as the client wrote them.
function rawFields(buf) {
  let o = 16;
  const cstr = () => { const start = o; while (buf[o] !== 0) o++; o++; return buf.slice(start, o - 1).toString('latin1'); };
  cstr(); // service_type
  o += 2; cstr(); // source ton/npi, source_addr
  o += 2; cstr(); // dest ton/npi, destination_addr
  o += 3; // esm_class, protocol_id, priority_flag
  cstr(); // schedule_delivery_time
  const validity = cstr();
  o += 4; // registered_delivery, replace_if_present, data_coding, sm_default_msg_id
  const len = buf[o];
  return { validity, sm: buf.slice(o + 1, o + 1 + len) };
}

const server = smpp.createServer({ debug: false }, function (session) {
  let bound = false;
  session.on('error', e => log({ event: 'session_error', message: e.message }));
  session.on('close', () => log({ event: 'close' }));
  session.on('bind_transceiver', function (pdu) {
    session.pause();
    const ok = pdu.system_id === 'test' && pdu.password === 'secret';
    // The password itself is not logged, only whether it matched.
    log({ pdu: 'bind_transceiver', system_id: pdu.system_id, password_ok: pdu.password === 'secret',
      interface_version: pdu.interface_version, ok });
    session.send(pdu.response(ok ? { system_id: 'sauti-node-smsc' } : { command_status: smpp.ESME_RBINDFAIL }));
    bound = ok;
    session.resume();
    if (!ok) setTimeout(() => session.close(), 50);
  });
  session.on('enquire_link', pdu => { log({ pdu: 'enquire_link', seq: pdu.sequence_number }); session.send(pdu.response()); });
  session.on('unbind', pdu => { log({ pdu: 'unbind' }); session.send(pdu.response()); session.close(); });
  session.on('deliver_sm_resp', pdu => log({ pdu: 'deliver_sm_resp', seq: pdu.sequence_number, status: pdu.command_status }));
  session.on('submit_sm', function (pdu) {
    if (!bound) {
      session.send(pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
      return;
    }
    const id = (nextId++).toString(16).toUpperCase().padStart(8, '0');
    const { validity, sm } = rawFields(pdu.raw);
    const udhi = (pdu.esm_class & 0x40) !== 0;
    const udh = udhi ? sm.slice(0, sm[0] + 1) : null;
    const message = pdu.short_message && typeof pdu.short_message === 'object' && !Buffer.isBuffer(pdu.short_message)
      ? pdu.short_message.message : pdu.short_message;
    log({
      pdu: 'submit_sm', seq: pdu.sequence_number, message_id: id,
      source_addr: pdu.source_addr, source_addr_ton: pdu.source_addr_ton, source_addr_npi: pdu.source_addr_npi,
      destination_addr: pdu.destination_addr, dest_addr_ton: pdu.dest_addr_ton, dest_addr_npi: pdu.dest_addr_npi,
      data_coding: pdu.data_coding, esm_class: pdu.esm_class, registered_delivery: pdu.registered_delivery,
      validity_period: validity,
      udh: udhi, udh_hex: udh ? udh.toString('hex') : null,
      message_hex: (udhi ? sm.slice(sm[0] + 1) : sm).toString('hex'),
      text: typeof message === 'string' ? message : null,
    });
    session.send(pdu.response({ message_id: id }));
    if (pdu.registered_delivery & 1) {
      setTimeout(() => {
        const ts = new Date().toISOString().replace(/[-T:]/g, '').slice(2, 12);
        const receipt = `id:${id} sub:001 dlvrd:001 submit date:${ts} done date:${ts} stat:DELIVRD err:000 text:`;
        session.deliver_sm({
          source_addr: pdu.destination_addr,
          destination_addr: pdu.source_addr,
          esm_class: 0x04, // SMSC delivery receipt
          data_coding: 0,
          short_message: Buffer.from(receipt, 'ascii'),
          receipted_message_id: id,
          message_state: 2,
        }, r => log({ pdu: 'deliver_sm_resp_for', receipt_of: id, status: r.command_status }));
        log({ pdu: 'deliver_sm', receipt_of: id });
      }, RECEIPT_DELAY_MS);
    }
    if (pdu.destination_addr === '999') {
      const parts = ['Habari ', 'yako?'];
      parts.forEach((text, i) => {
        const udhBytes = Buffer.from([0x05, 0x00, 0x03, 0x2A, parts.length, i + 1]);
        session.deliver_sm({
          source_addr: '254700000999', source_addr_ton: 1, source_addr_npi: 1,
          destination_addr: pdu.source_addr,
          esm_class: 0x40, data_coding: 0,
          short_message: Buffer.concat([udhBytes, Buffer.from(text, 'ascii')]),
        }, r => log({ pdu: 'deliver_sm_resp_for', mo_part: i + 1, status: r.command_status }));
        log({ pdu: 'deliver_sm', mo_part: i + 1 });
      });
    }
  });
});

server.listen(PORT, '127.0.0.1', () => log({ event: 'listening', host: '127.0.0.1', port: PORT }));
