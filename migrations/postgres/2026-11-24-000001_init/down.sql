DROP TABLE responses;
DROP TABLE form_versions;
