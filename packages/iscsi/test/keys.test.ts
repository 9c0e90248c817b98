import { expect } from 'chai';
import { decodeBinary } from '../src/chap.js';
import { negotiate, parseText, SessionParams, type TargetLimits, TextError } from '../src/keys.js';

const OURS: TargetLimits = {
  maxConnections: 2,
  initialR2T: false,
  immediateData: true,
  maxBurstLength: 1 << 20,
  firstBurstLength: 8192,
  defaultTime2Wait: 2,
  defaultTime2Retain: 20,
  maxOutstandingR2T: 4,
  errorRecoveryLevel: 0,
  maxRecvDataSegmentLength: 65536,
};

function neg(pairs: [string, string][], leading = true, discovery = false) {
  const p = new SessionParams();
  const r = negotiate(pairs, p, OURS, new Set(), leading, discovery);
  return { p, r: r === null ? null : new Map(r) };
}

describe('iscsi: text keys', () => {
  it('parses key=value pairs and refuses a repeated key or a missing =', () => {
    expect(parseText(Buffer.from('A=1\0B=x=y\0'))).to.deep.equal([
      ['A', '1'],
      ['B', 'x=y'],
    ]);
    expect(() => parseText(Buffer.from('A=1\0A=2\0'))).to.throw(TextError);
    expect(() => parseText(Buffer.from('novalue\0'))).to.throw(TextError);
  });

  it('negotiates each key with its RFC 7143 function', () => {
    const { p, r } = neg([
      ['MaxConnections', '8'],
      ['InitialR2T', 'No'],
      ['ImmediateData', 'Yes'],
      ['MaxBurstLength', '262144'],
      ['FirstBurstLength', '0x10000'],
      ['DefaultTime2Wait', '0'],
      ['DefaultTime2Retain', '60'],
      ['MaxOutstandingR2T', '16'],
      ['ErrorRecoveryLevel', '2'],
      ['HeaderDigest', 'CRC32C,None'],
      ['DataDigest', 'None'],
      ['MaxRecvDataSegmentLength', '262144'],
      ['IFMarker', 'No'],
    ]);
    expect(Object.fromEntries(r!)).to.deep.equal({
      MaxConnections: '2',
      InitialR2T: 'No',
      ImmediateData: 'Yes',
      MaxBurstLength: '262144',
      FirstBurstLength: '8192',
      DefaultTime2Wait: '2',
      DefaultTime2Retain: '20',
      MaxOutstandingR2T: '4',
      ErrorRecoveryLevel: '0',
      HeaderDigest: 'CRC32C',
      DataDigest: 'None',
      IFMarker: 'No',
    });
    expect(p.headerDigest).to.equal(true);
    expect(p.maxSendDataSegment).to.equal(262144);
  });

  it('answers Reject for values out of range or malformed, NotUnderstood for unknown keys', () => {
    const { r } = neg([
      ['MaxBurstLength', '100'],
      ['MaxConnections', '0'],
      ['ImmediateData', 'maybe'],
      ['HeaderDigest', 'MD5'],
      ['Y-unknown', 'x'],
    ]);
    expect(r!.get('MaxBurstLength')).to.equal('Reject');
    expect(r!.get('MaxConnections')).to.equal('Reject');
    expect(r!.get('ImmediateData')).to.equal('Reject');
    expect(r!.get('HeaderDigest')).to.equal('Reject');
    expect(r!.get('Y-unknown')).to.equal('NotUnderstood');
  });

  it('treats a key negotiated twice in one login as an error and session keys on a non-leading login as Irrelevant', () => {
    const p = new SessionParams();
    const settled = new Set<string>();
    expect(negotiate([['MaxBurstLength', '4096']], p, OURS, settled, true, false)).to.not.equal(null);
    expect(negotiate([['MaxBurstLength', '8192']], p, OURS, settled, true, false)).to.equal(null);
    expect(neg([['MaxBurstLength', '4096']], false).r!.get('MaxBurstLength')).to.equal('Irrelevant');
  });

  it("regression: a login answer named MaxRecvDataSegmentLength twice (Reject to a bad declaration, then the target's own); found by login-fuzz", () => {
    // The initiator's declaration out of range or malformed: the login fails, nothing is answered.
    for (const v of [':62144', '100', '16777216', ''])
      expect(neg([['MaxRecvDataSegmentLength', v]]).r, v).to.equal(null);
    // Keys only targets send, which the target declares itself in the same response.
    for (const k of ['TargetPortalGroupTag', 'TargetAlias', 'TargetAddress'])
      expect(neg([[k, '1']]).r, k).to.equal(null);
  });

  it("regression: a discovery session answered ErrorRecoveryLevel=Irrelevant, which open-iscsi's SendTargets discovery refuses (RFC 7143: irrelevant only for the normal-session keys)", () => {
    const keys: [string, string][] = [
      ['HeaderDigest', 'None'],
      ['DataDigest', 'None'],
      ['DefaultTime2Wait', '2'],
      ['DefaultTime2Retain', '0'],
      ['IFMarker', 'No'],
      ['OFMarker', 'No'],
      ['ErrorRecoveryLevel', '0'],
      ['MaxRecvDataSegmentLength', '32768'],
      ['InitialR2T', 'Yes'],
      ['ImmediateData', 'Yes'],
      ['MaxBurstLength', '16776192'],
      ['FirstBurstLength', '262144'],
      ['MaxOutstandingR2T', '1'],
      ['MaxConnections', '1'],
      ['DataPDUInOrder', 'Yes'],
      ['DataSequenceInOrder', 'Yes'],
    ];
    const r = neg(keys, true, true).r!;
    expect(r.get('ErrorRecoveryLevel')).to.equal('0');
    expect(r.get('DefaultTime2Wait')).to.equal('2');
    expect(r.get('DefaultTime2Retain')).to.equal('0');
    expect(r.get('HeaderDigest')).to.equal('None');
    for (const k of [
      'InitialR2T',
      'ImmediateData',
      'MaxBurstLength',
      'FirstBurstLength',
      'MaxOutstandingR2T',
      'MaxConnections',
      'DataPDUInOrder',
      'DataSequenceInOrder',
    ])
      expect(r.get(k), k).to.equal('Irrelevant');
  });

  it('decodes CHAP binary values in hex and base64', () => {
    expect([...decodeBinary('0x0a0B')!]).to.deep.equal([10, 11]);
    expect([...decodeBinary('0bAQI=')!]).to.deep.equal([1, 2]);
    expect(decodeBinary('1234')).to.equal(null);
  });
});
