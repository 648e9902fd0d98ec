/**
 * Which attributes belong to which QIDO-RS level (PS3.18 Tables 10.6.3-3 to 10.6.3-5 and the modules they
 * come from: Patient, General Study, General Series, SOP Common / General Image). The index keeps these
 * as DICOM JSON per level, extracted once at ingest.
 */
import { JsonDataset } from '../dicom/json';

export const STUDY_LEVEL = [
  '00080005', // SpecificCharacterSet
  '00080020', // StudyDate
  '00080030', // StudyTime
  '00080050', // AccessionNumber
  '00080051', // IssuerOfAccessionNumberSequence
  '00080090', // ReferringPhysicianName
  '00080201', // TimezoneOffsetFromUTC
  '00081030', // StudyDescription
  '00081032', // ProcedureCodeSequence
  '00100010', // PatientName
  '00100020', // PatientID
  '00100021', // IssuerOfPatientID
  '00100030', // PatientBirthDate
  '00100040', // PatientSex
  '00101010', // PatientAge
  '00101020', // PatientSize
  '00101030', // PatientWeight
  '0020000D', // StudyInstanceUID
  '00200010', // StudyID
];

export const SERIES_LEVEL = [
  '00080005', // SpecificCharacterSet
  '00080021', // SeriesDate
  '00080031', // SeriesTime
  '00080060', // Modality
  '00080201', // TimezoneOffsetFromUTC
  '0008103E', // SeriesDescription
  '00081111', // ReferencedPerformedProcedureStepSequence
  '00180015', // BodyPartExamined
  '0020000E', // SeriesInstanceUID
  '00200011', // SeriesNumber
  '00200060', // Laterality
  '00400244', // PerformedProcedureStepStartDate
  '00400245', // PerformedProcedureStepStartTime
  '00400275', // RequestAttributesSequence
];

export const INSTANCE_LEVEL = [
  '00080005', // SpecificCharacterSet
  '00080008', // ImageType
  '00080016', // SOPClassUID
  '00080018', // SOPInstanceUID
  '00080022', // AcquisitionDate
  '00080023', // ContentDate
  '00080032', // AcquisitionTime
  '00080033', // ContentTime
  '00080201', // TimezoneOffsetFromUTC
  '00200013', // InstanceNumber
  '00200032', // ImagePositionPatient
  '00200037', // ImageOrientationPatient
  '00280002', // SamplesPerPixel
  '00280004', // PhotometricInterpretation
  '00280008', // NumberOfFrames
  '00280010', // Rows
  '00280011', // Columns
  '00280100', // BitsAllocated
  '0040A043', // ConceptNameCodeSequence
  '0040A073', // VerifyingObserverSequence
  '0040A491', // CompletionFlag
  '0040A493', // VerificationFlag
];

export function pick(ds: JsonDataset, tags: string[]): JsonDataset {
  const out: JsonDataset = {};
  for (const t of tags) if (ds[t]) out[t] = ds[t];
  return out;
}

/**
 * Top-level attributes that are neither binary nor pixel data: what QIDO may match or return for keys beyond
 * the level's own list (`includefield`).
 */
export function searchable(ds: JsonDataset): JsonDataset {
  const out: JsonDataset = {};
  for (const [t, a] of Object.entries(ds)) {
    if (a.InlineBinary !== undefined || a.BulkDataURI !== undefined) continue;
    if (['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN'].includes(a.vr)) continue;
    out[t] = a;
  }
  return out;
}
